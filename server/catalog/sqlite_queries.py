"""The SQLite catalog answering data users' queries: stations with their last observation,
and observations series by series along the (series, observed_us) index, in short
statements, so that a long answer neither holds the whole result nor a read transaction
open against ingest (docs/api.md)."""

from __future__ import annotations

import json
import re
import sqlite3
from typing import Iterator

from obslink.readings import MAX_TIME_US, MIN_TIME_US
from obslink.sqlite_store import dicts
from obslink.server.catalog.queries import (Cursor, ObservationQuery, ObservationRow,
                                            csv_field)

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

    def _chunks(self, query: ObservationQuery, after: Cursor | None, columns: str,
                limit: int | None = None) -> Iterator[tuple[tuple, list]]:
        """(series row, rows) chunk by chunk: ``columns`` over the matching observation
        rows ``v`` and their batches ``b``, then the row's observed_us and id, at most
        ``limit`` rows in all."""
        start = MIN_TIME_US if query.start_us is None else query.start_us
        end = MAX_TIME_US if query.end_us is None else query.end_us
        filters, filter_params = "", []
        if query.qc:
            filters += f" AND v.qc IN ({','.join('?' * len(query.qc))})"
            filter_params += query.qc
        if not query.missing:
            filters += " AND v.value IS NOT NULL"
        statement = (
            f"SELECT {columns}, v.observed_us, v.id FROM observation_values v JOIN batches b "
            "ON b.id = v.batch_id WHERE v.series = ? AND (v.observed_us, v.id) > (?, ?) AND "
            f"v.observed_us <= ?{filters} ORDER BY v.observed_us, v.id LIMIT ?")
        left = limit
        for series_row in self._series_for(query):
            series = series_row[0]
            if after is not None and series < after.series:
                continue
            position = (start, -1)
            if after is not None and series == after.series:
                position = max(position, (after.observed_us, after.row))
            while left is None or left > 0:
                size = CHUNK if left is None else min(CHUNK, left)
                rows = self.conn.execute(statement, (series, *position, end, *filter_params,
                                                     size)).fetchall()
                if rows:
                    yield series_row, rows
                    position = (rows[-1][-2], rows[-1][-1])
                    if left is not None:
                        left -= len(rows)
                if len(rows) < size:
                    break

    def observations(self, query: ObservationQuery, after: Cursor | None = None
                     ) -> Iterator[ObservationRow]:
        """Every matching observation after ``after``, series by series in time order."""
        columns = "v.value, v.source_flag, v.qc, b.epoch, b.seq, v.id - b.first_row"
        for (series, station, element, unit, field, period, lat, lon), rows in \
                self._chunks(query, after, columns):
            for value, flag, qc, epoch, seq, index, observed, row_id in rows:
                yield ObservationRow(station, epoch, seq, index, element, unit, field,
                                     period, observed, value, flag, qc, lat, lon,
                                     Cursor(series, observed, row_id))

    def observation_text(self, query: ObservationQuery, after: Cursor | None = None,
                         fmt: str = "csv", limit: int | None = None
                         ) -> Iterator[tuple[str, Cursor, int]]:
        """queries.csv_line / json_object text, a row at a time in C: SQL reads each row's
        parts (the time's text included; not the value's, whose text SQLite would cut to
        15 digits) and a %-format made per series joins them. A series whose station has
        an outbox epoch with characters an identifier cannot hold unquoted takes the
        Python reference instead."""
        plain_epochs: dict[str, bool] = {}
        columns = _CSV_COLUMNS if fmt == "csv" else _JSON_COLUMNS
        make_format = _csv_format if fmt == "csv" else _json_format
        for series_row, rows in self._chunks(query, after, columns, limit):
            station = series_row[1]
            if station not in plain_epochs:  # (GLOB would stop at a NUL in the text)
                plain_epochs[station] = all(_PLAIN_EPOCH.fullmatch(epoch) for (epoch,) in
                                            self.conn.execute("SELECT DISTINCT epoch FROM "
                                                              "batches WHERE station = ?",
                                                              (station,)))
            last = Cursor(series_row[0], rows[-1][-2], rows[-1][-1])
            if plain_epochs[station]:
                yield "".join(map(make_format(series_row).__mod__, rows)), last, len(rows)
            else:
                yield from self._reference_text(query, series_row, rows, fmt, last)

    def _reference_text(self, query, series_row, rows, fmt, last):
        from obslink.server.catalog.interface import Catalog

        first = Cursor(series_row[0], rows[0][-2], rows[0][-1])
        before = Cursor(first.series, first.observed_us, first.row - 1)
        for text, _cursor, count in Catalog.observation_text(self, query, before, fmt,
                                                             len(rows)):
            yield text, last, count


# a row's parts: epoch, seq, its index in the batch, the time to the second, its
# microseconds, the value (text by Python), qc, the source flag; then the cursor's columns
# datetime() with its space made a 'T' reads the second nearly twice as fast as a
# strftime() format does (bench/catalog_queries.py's year of one station)
_SECONDS = ("replace(datetime((v.observed_us - ((v.observed_us % 1000000) + 1000000) % "
            "1000000) / 1000000, 'unixepoch'), ' ', 'T')")
_MICROS = "((v.observed_us % 1000000) + 1000000) % 1000000"
_CSV_COLUMNS = (f"b.epoch, b.seq, v.id - b.first_row, {_SECONDS}, {_MICROS}, "
                "coalesce(v.value, ''), v.qc, CASE WHEN v.source_flag IS NULL THEN '' WHEN "
                "instr(v.source_flag, ',') OR instr(v.source_flag, '\"') OR "
                "instr(v.source_flag, char(13)) OR instr(v.source_flag, char(10)) THEN '\"' "
                "|| replace(v.source_flag, '\"', '\"\"') || '\"' ELSE v.source_flag END")
# an epoch an identifier holds as it is (agents make hex ones)
_PLAIN_EPOCH = re.compile(r"[A-Za-z0-9._-]+")
_JSON_COLUMNS = (f"b.epoch, b.seq, v.id - b.first_row, {_SECONDS}, {_MICROS}, "
                 "coalesce(v.value, 'null'), v.qc, coalesce(json_quote(v.source_flag), "
                 "'null')")


def _literal(text: str) -> str:
    return text.replace("%", "%%")


def _csv_format(series_row: tuple) -> str:
    _series, station, element, unit, field, period, _lat, _lon = series_row
    const = lambda text: _literal(csv_field(text))  # noqa: E731
    return (f"obslink:{_literal(station)}/%s/%s/%s,{const(station)},%s.%06dZ,"
            f"{const(element)},{const(unit)},%s,%s,%s,{const(field)},"
            f"{'' if period is None else period}\n%.0s%.0s")


def _json_format(series_row: tuple) -> str:
    _series, station, element, unit, field, period, _lat, _lon = series_row
    const = lambda text: _literal(json.dumps(text, ensure_ascii=False))  # noqa: E731
    return (f'{{"id": "obslink:{_literal(station)}/%s/%s/%s", "station": {const(station)}, '
            f'"observed_at": "%s.%06dZ", "element": {const(element)}, "unit": '
            f'{const(unit)}, "value": %s, "qc": %s, "source_flag": %s, "source_field": '
            f'{const(field)}, "period_s": {"null" if period is None else period}}},%.0s%.0s')
