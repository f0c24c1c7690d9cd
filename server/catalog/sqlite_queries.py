"""The SQLite catalog answering data users' queries: stations with their last observation,
and observations series by series along the (series, observed_us) index, in short
statements, so that a long answer neither holds the whole result nor a read transaction
open against ingest (docs/api.md)."""

from __future__ import annotations

import sqlite3
from typing import Iterator

from obslink.readings import MAX_TIME_US, MIN_TIME_US
from obslink.sqlite_store import dicts
from obslink.server.catalog.queries import Cursor, ObservationQuery, ObservationRow

CHUNK = 5000  # rows a statement reads before the next one continues after the last


class SQLiteQueries:
    """Mixed into SQLiteCatalog."""

    conn: sqlite3.Connection

    def station_summaries(self) -> list[dict]:
        """Every station with its newest observation time (µs; from each series' index)."""
        stations = dicts(self.conn.execute(
            "SELECT id, name, network, latitude, longitude, interval_seconds, created_at, "
            "retired_at FROM stations ORDER BY id"))
        last: dict[str, int] = {}
        for station, newest in self.conn.execute(
                "SELECT s.station, (SELECT max(observed_us) FROM observation_values v "
                "WHERE v.series = s.id) FROM series s"):
            if newest is not None and newest > last.get(station, MIN_TIME_US - 1):
                last[station] = newest
        for station in stations:
            station["last_observed_us"] = last.get(station["id"])
        return stations

    def _series_for(self, query: ObservationQuery) -> list[tuple]:
        where, params = [], []
        if query.stations:
            where.append(f"s.station IN ({','.join('?' * len(query.stations))})")
            params += query.stations
        if query.elements:
            where.append(f"s.element IN ({','.join('?' * len(query.elements))})")
            params += query.elements
        if query.bbox:
            where.append("t.longitude BETWEEN ? AND ? AND t.latitude BETWEEN ? AND ?")
            params += (query.bbox[0], query.bbox[2], query.bbox[1], query.bbox[3])
        return self.conn.execute(
            "SELECT s.id, s.station, s.element, s.unit, s.source_field, s.period_s, "
            "t.latitude, t.longitude FROM series s JOIN stations t ON t.id = s.station "
            + ("WHERE " + " AND ".join(where) if where else "") + " ORDER BY s.id",
            params).fetchall()

    def observations(self, query: ObservationQuery, after: Cursor | None = None
                     ) -> Iterator[ObservationRow]:
        """Every matching observation after ``after``, series by series in time order."""
        start = MIN_TIME_US if query.start_us is None else query.start_us
        end = MAX_TIME_US if query.end_us is None else query.end_us
        filters, filter_params = "", []
        if query.qc:
            filters += f" AND v.qc IN ({','.join('?' * len(query.qc))})"
            filter_params += query.qc
        if not query.missing:
            filters += " AND v.value IS NOT NULL"
        statement = (
            "SELECT v.id, v.observed_us, v.value, v.source_flag, v.qc, b.station, b.epoch, "
            "b.seq, v.id - b.first_row FROM observation_values v JOIN batches b ON "
            "b.id = v.batch_id WHERE v.series = ? AND (v.observed_us, v.id) > (?, ?) AND "
            f"v.observed_us <= ?{filters} ORDER BY v.observed_us, v.id LIMIT {CHUNK}")
        for series, station, element, unit, field, period, lat, lon in self._series_for(query):
            if after is not None and series < after.series:
                continue
            position = (start, -1)
            if after is not None and series == after.series:
                position = max(position, (after.observed_us, after.row))
            while True:
                rows = self.conn.execute(statement, (series, *position, end,
                                                     *filter_params)).fetchall()
                for row_id, observed, value, flag, qc, _station, epoch, seq, index in rows:
                    yield ObservationRow(station, epoch, seq, index, element, unit, field,
                                         period, observed, value, flag, qc, lat, lon,
                                         Cursor(series, observed, row_id))
                if len(rows) < CHUNK:
                    break
                position = (rows[-1][1], rows[-1][0])
