"""The SQLite catalog's datasets and settings: a record per station and product (made
with the station), the rest read from the data when asked."""

from __future__ import annotations

import sqlite3

from obslink.readings import format_utc, now_us
from obslink.sqlite_store import dicts, transaction
from obslink.server.catalog.datasets import check_dataset_changes, check_settings
from obslink.server.catalog.errors import no_dataset
from obslink.server.catalog.identifiers import RADAR, SURFACE, dataset_id

PRODUCT_TITLES = {SURFACE: "Surface observations of {name}", RADAR: "Radar products of {name}"}

_DATASET = ("SELECT d.id, d.station, d.product, d.title, d.description, d.classification, "
            "d.licence, d.created_at, d.updated_at, s.name AS station_name, s.network, "
            "s.latitude, s.longitude, s.interval_seconds, s.retired_at "
            "FROM datasets d JOIN stations s ON s.id = d.station ")


class SQLiteDatasets:
    """Mixed into SQLiteCatalog."""

    conn: sqlite3.Connection

    def catalog_settings(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, value FROM catalog_settings"))

    def update_catalog_settings(self, **changes: str) -> dict[str, str]:
        check_settings(changes)
        with transaction(self.conn):
            self.conn.executemany("UPDATE catalog_settings SET value = ? WHERE key = ?",
                                  [(value, key) for key, value in changes.items()])
        return self.catalog_settings()

    def _add_dataset_in(self, conn, station: str, name: str | None,
                        product: str = SURFACE) -> None:
        """The station's dataset of ``product``, under the catalog's defaults."""
        title = PRODUCT_TITLES.get(product, "{product} of {name}").format(
            product=product, name=name or station)
        settings = dict(conn.execute("SELECT key, value FROM catalog_settings"))
        now = format_utc(now_us(), fixed=True)
        conn.execute("INSERT INTO datasets (id, station, product, title, classification, "
                     "licence, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?) "
                     "ON CONFLICT (station, product) DO NOTHING",
                     (dataset_id(station, product), station, product,
                      title,
                      settings.get("default_classification", "public"),
                      settings.get("default_licence", ""), now, now))

    def datasets(self, station: str | None = None) -> list[dict]:
        where, params = ("WHERE d.station = ? ", (station,)) if station else ("", ())
        return [self._current(found) for found in dicts(self.conn.execute(
            _DATASET + where + "ORDER BY d.station, d.product", params))]

    def dataset(self, identifier: str) -> dict:
        found = dicts(self.conn.execute(_DATASET + "WHERE d.id = ?", (identifier,)))
        if not found:
            raise no_dataset(identifier)
        return self._current(found[0])

    def update_dataset(self, identifier: str, **changes) -> dict:
        changes = check_dataset_changes({key: value for key, value in changes.items()
                                         if value is not None})
        self.dataset(identifier)  # says which dataset is unknown
        if changes:
            with transaction(self.conn):
                self.conn.execute(
                    f"UPDATE datasets SET {', '.join(f'{key} = ?' for key in changes)}, "
                    f"updated_at = ? WHERE id = ?",
                    (*changes.values(), format_utc(now_us(), fixed=True), identifier))
        return self.dataset(identifier)

    def _current(self, found: dict) -> dict:
        """A dataset with what its data says now: the elements and the temporal extent
        (first and last observation time, µs), each series' ends read from its index; a
        radar dataset's extent is its products'."""
        if found["product"] == RADAR:
            start, end = self.conn.execute(
                "SELECT min(observed_us), max(observed_us) FROM products WHERE station = ?",
                (found["station"],)).fetchone()
            return {**found, "elements": [], "time_start": start, "time_end": end}
        elements, start, end = set(), None, None
        for series, element in self.conn.execute(
                "SELECT id, element FROM series WHERE station = ?", (found["station"],)):
            elements.add(element)
            first = self.conn.execute("SELECT min(observed_us) FROM observation_values "
                                      "WHERE series = ?", (series,)).fetchone()[0]
            last = self.conn.execute("SELECT max(observed_us) FROM observation_values "
                                     "WHERE series = ?", (series,)).fetchone()[0]
            if first is not None:
                start = first if start is None else min(start, first)
                end = last if end is None else max(end, last)
        return {**found, "elements": sorted(elements), "time_start": start, "time_end": end}

