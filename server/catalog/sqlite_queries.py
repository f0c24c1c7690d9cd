"""The SQLite catalog answering data users' queries: stations with their last observation,
and observations series by series along the (series, observed_us) index, in short
statements, so that a long answer neither holds the whole result nor a read transaction
open against ingest (docs/api.md)."""

from __future__ import annotations

import json
import re
import sqlite3
from typing import Iterator

from obslink.readings import MAX_TIME_US, MIN_TIME_US, format_utc
from obslink.sqlite_store import dicts
from obslink.server.catalog.identifiers import SURFACE
from obslink.server.catalog.queries import (Cursor, ObservationQuery, ObservationRow,
                                            csv_field, csv_line, json_object)

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

    def _series_for(self, query: ObservationQuery, from_series: int | None = None
                    ) -> list[tuple]:
        """The matching series (from ``from_series`` on: a cursor's page does not read
        the series before it)."""
        where, params = [], []
        if from_series is not None:
            where.append("s.id >= ?")
            params.append(from_series)
        if query.stations:
            where.append(f"s.station IN ({','.join('?' * len(query.stations))})")
            params += query.stations
        if query.elements:
            where.append(f"s.element IN ({','.join('?' * len(query.elements))})")
            params += query.elements
        if query.bbox:
            where.append("t.longitude BETWEEN ? AND ? AND t.latitude BETWEEN ? AND ?")
            params += (query.bbox[0], query.bbox[2], query.bbox[1], query.bbox[3])
        if query.levels:
            where.append(f"s.station IN (SELECT station FROM datasets WHERE product = ? AND "
                         f"classification IN ({','.join('?' * len(query.levels))}))")
            params += (SURFACE, *query.levels)
        return self.conn.execute(
            "SELECT s.id, s.station, s.element, s.unit, s.source_field, s.period_s, "
            "t.latitude, t.longitude FROM series s JOIN stations t ON t.id = s.station "
            + ("WHERE " + " AND ".join(where) if where else "") + " ORDER BY s.id",
            params).fetchall()

    def _positions(self, query: ObservationQuery, after: Cursor | None
                   ) -> Iterator[tuple[tuple, tuple[int, int]]]:
        """Each matching series (its row from _series_for) with the position its answer
        starts after: the query's start, or the cursor's place in the cursor's series."""
        start = MIN_TIME_US if query.start_us is None else query.start_us
        for series_row in self._series_for(query, None if after is None else after.series):
            series = series_row[0]
            position = (start, -1)
            if after is not None and series == after.series:
                position = max(position, (after.observed_us, after.row))
            yield series_row, position

    @staticmethod
    def _filters(query: ObservationQuery) -> tuple[str, dict]:
        """The query's conditions on a row ``v`` beyond series and time, as SQL with
        named parameters."""
        filters, params = "", {}
        if query.qc:
            names = [f"qc{number}" for number in range(len(query.qc))]
            filters += f" AND v.qc IN ({','.join(':' + name for name in names)})"
            params.update(zip(names, query.qc))
        if not query.missing:
            filters += " AND v.value IS NOT NULL"
        return filters, params

    def _rows(self, columns: str, filters: str, params: dict) -> list:
        """``columns`` of the series' rows after the position, up to the bound, then each
        row's observed_us and id: params series, after_us, after_row, bound, size."""
        return self.conn.execute(
            f"SELECT {columns}, v.observed_us, v.id FROM observation_values v JOIN batches b "
            f"ON b.id = v.batch_id WHERE {_AFTER.format(filters=filters)} "
            "ORDER BY v.observed_us, v.id LIMIT :size", params).fetchall()

    def _series_rows(self, series_row, position, end, filters, params, columns, left
                     ) -> Iterator[list]:
        """One series' rows after ``position`` up to ``end``, CHUNK at a time (at most
        ``left`` in all): ``columns`` over the rows ``v`` and their batches ``b``, then
        each row's observed_us and id."""
        params = {**params, "series": series_row[0], "bound": end}
        while left is None or left > 0:
            size = CHUNK if left is None else min(CHUNK, left)
            params.update(after_us=position[0], after_row=position[1], size=size)
            rows = self._rows(columns, filters, params)
            if rows:
                yield rows
                position = tuple(rows[-1][-2:])
                if left is not None:
                    left -= len(rows)
            if len(rows) < size:
                return

    def _chunks(self, query: ObservationQuery, after: Cursor | None, columns: str
                ) -> Iterator[tuple[tuple, list]]:
        """(series row, rows) chunk by chunk: ``columns`` over the matching observation
        rows ``v`` and their batches ``b``, then the row's observed_us and id."""
        end = MAX_TIME_US if query.end_us is None else query.end_us
        filters, params = self._filters(query)
        for series_row, position in self._positions(query, after):
            for rows in self._series_rows(series_row, position, end, filters, params,
                                          columns, None):
                yield series_row, rows

    def observations(self, query: ObservationQuery, after: Cursor | None = None
                     ) -> Iterator[ObservationRow]:
        """Every matching observation after ``after``, series by series in time order."""
        for series_row, rows in self._chunks(query, after, _ROW_COLUMNS):
            yield from observation_rows(series_row, rows)

    def observation_text(self, query: ObservationQuery, after: Cursor | None = None,
                         fmt: str = "csv", limit: int | None = None
                         ) -> Iterator[tuple[str, Cursor, int]]:
        """queries.csv_line / json_object text, built in SQL: a statement formats a UTC
        day of a series (or CHUNK rows of it) and joins the lines, so that Python handles
        a chunk, not a row. A chunk whose values SQLite would not write as Python does
        (16 or 17 digits, exponents) is formatted again in Python; a series whose
        station has an outbox epoch with characters an identifier cannot hold unquoted,
        or whose names hold a NUL, takes the Python reference."""
        end = MAX_TIME_US if query.end_us is None else query.end_us
        filters, params = self._filters(query)
        plain_epochs: dict[str, bool] = {}
        left = limit
        for series_row, position in self._positions(query, after):
            if left is not None and left <= 0:
                return
            station = series_row[1]
            if station not in plain_epochs:
                plain_epochs[station] = self._epochs_plain(station)
            names = [text for text in series_row[1:5] if text is not None]
            if not plain_epochs[station] or any("\x00" in text for text in names):
                texts = self._reference_text(series_row, position, end, filters, params,
                                             fmt, left)
            else:
                texts = self._series_text(series_row, position, end, filters, params, fmt,
                                          left)
            for text, cursor, count in texts:
                yield text, cursor, count
                if left is not None:
                    left -= count

    def _epochs_plain(self, station: str) -> bool:
        """Whether every outbox epoch of the station goes into an identifier as it is (the
        SQL line format writes it unquoted). (GLOB would stop at a NUL in the text.)"""
        return all(PLAIN_EPOCH.fullmatch(epoch) for (epoch,) in self.conn.execute(
            _STATION_EPOCHS, {"station": station}))

    def _series_text(self, series_row, position, end, filters, params, fmt, left):
        """One series' text, a chunk per statement: a chunk holds rows of one UTC day,
        whose date is a parameter (datetime() per row would cost more than the rest of
        the line); a day with no rows is skipped by looking up the next row."""
        make_format = LINE_FORMATS[fmt]
        python_format = make_format(series_row)
        params = {**params, "series": series_row[0], "missing": "" if fmt == "csv" else
                  "null", "line": make_format(series_row, _SQL_TIME, "")}
        statement = _TEXT_STATEMENT[fmt].format(filters=filters)
        day = position[0] // DAY_US * DAY_US  # (a cursor past `end` has no day to write)
        while (left is None or left > 0) and position[0] <= end:
            size = CHUNK if left is None else min(CHUNK, left)
            bound = min(end, day + DAY_US - 1)
            params.update(after_us=position[0], after_row=position[1], bound=bound,
                          size=size, day=day, date=format_utc(day, fixed=True)[:11])
            text, count, odd = self.conn.execute(statement, params).fetchone()
            if count == 0:
                following = None if bound == end else self.conn.execute(
                    _NEXT_ROW.format(filters=filters), {**params, "bound": end}).fetchone()
                if following is None:
                    return
                day = following[0] // DAY_US * DAY_US
                continue
            if odd:  # Python writes this chunk's lines
                rows = self._rows(_TEXT_COLUMNS[fmt], filters, params)
                text = "".join(map(python_format.__mod__, rows))
                last = tuple(rows[-1][-2:])
            else:
                last = tuple(self.conn.execute(
                    (_LAST_ROW if count < size else _NTH_ROW).format(filters=filters),
                    {**params, "offset": count - 1}).fetchone())
            yield text, Cursor(series_row[0], *last), count
            if left is not None:
                left -= count
            position = last
            if count < size:  # the day is done
                if bound == end:
                    return
                day += DAY_US

    def _reference_text(self, series_row, position, end, filters, params, fmt, left):
        """One series' text by queries.csv_line / json_object."""
        line = csv_line if fmt == "csv" else (lambda row: json_object(row) + ",")
        for rows in self._series_rows(series_row, position, end, filters, params,
                                      _ROW_COLUMNS, left):
            yield ("".join(map(line, observation_rows(series_row, rows))),
                   Cursor(series_row[0], *rows[-1][-2:]), len(rows))


def observation_rows(series_row: tuple, rows: list) -> Iterator[ObservationRow]:
    series, station, element, unit, field, period, lat, lon = series_row
    for value, flag, qc, epoch, seq, index, observed, row_id in rows:
        yield ObservationRow(station, epoch, seq, index, element, unit, field, period,
                             observed, value, flag, qc, lat, lon,
                             Cursor(series, observed, row_id))


_ROW_COLUMNS = "v.value, v.source_flag, v.qc, b.epoch, b.seq, v.id - b.first_row"

# The Python format of a chunk SQLite's text may not hold: a row's parts are the epoch, seq,
# its index in the batch, the time to the second, its microseconds, the value (text by
# Python), qc, the source flag; then the cursor's columns. datetime() with its space made
# a 'T' reads the second nearly twice as fast as a strftime() format does.
_SECONDS = ("replace(datetime((v.observed_us - ((v.observed_us % 1000000) + 1000000) % "
            "1000000) / 1000000, 'unixepoch'), ' ', 'T')")
_MICROS = "((v.observed_us % 1000000) + 1000000) % 1000000"
_CSV_FLAG = ("CASE WHEN v.source_flag IS NULL THEN '' WHEN instr(v.source_flag, ',') OR "
             "instr(v.source_flag, '\"') OR instr(v.source_flag, char(13)) OR "
             "instr(v.source_flag, char(10)) THEN '\"' || replace(v.source_flag, '\"', "
             "'\"\"') || '\"' ELSE v.source_flag END")
_JSON_FLAG = "coalesce(json_quote(v.source_flag), 'null')"
_TEXT_COLUMNS = {
    "csv": (f"b.epoch, b.seq, v.id - b.first_row, {_SECONDS}, {_MICROS}, "
            f"coalesce(v.value, ''), v.qc, {_CSV_FLAG}"),
    "json": (f"b.epoch, b.seq, v.id - b.first_row, {_SECONDS}, {_MICROS}, "
             f"coalesce(v.value, 'null'), v.qc, {_JSON_FLAG}")}
# an epoch an identifier holds as it is (agents make hex ones)
PLAIN_EPOCH = re.compile(r"[A-Za-z0-9._-]+")
# A station's outbox epochs, an index seek each (a loose index scan on batches' unique
# (station, epoch, seq)): DISTINCT read every batch of the station, half a million index
# entries for a year of one-minute batches, at every request.
_STATION_EPOCHS = (
    "WITH RECURSIVE epochs (epoch) AS (SELECT min(epoch) FROM batches WHERE station = "
    ":station UNION ALL SELECT (SELECT min(b.epoch) FROM batches b WHERE b.station = "
    ":station AND b.epoch > epochs.epoch) FROM epochs WHERE epochs.epoch IS NOT NULL) "
    "SELECT epoch FROM epochs WHERE epoch IS NOT NULL")

DAY_US = 86_400_000_000
# a series' rows after a position, up to a bound, that the query's filters admit
_AFTER = ("v.series = :series AND (v.observed_us, v.id) > (:after_us, :after_row) AND "
          "v.observed_us <= :bound{filters}")

# One chunk's text, its rows, and how many of them printf() would not write as Python
# does: values whose SQLite text (15 significant digits, an exponent outside 1e-4..1e15)
# is not Python's str() (it does not read back as the value, or is out of that range),
# and flags with a NUL (where printf's %s stops). The subquery's order is the lines'
# order: it is computed apart from the aggregate (LIMIT keeps it from being flattened
# into it), and tests/test_catalog_api.py compares every line and page with the reference.
_TEXT_STATEMENT = {fmt: (
    "SELECT group_concat(printf(:line, epoch, seq, idx, :date, second / 3600, "
    "second / 60 % 60, second % 60, micro, coalesce(t, :missing), qc, flag), ''), "
    "count(*), count(*) FILTER (WHERE NOT ((t IS NULL OR CAST(t AS REAL) = value AND "
    "(value = 0 OR value >= 1e-4 AND value < 1e15 OR value <= -1e-4 AND value > -1e15)) "
    "AND (raw_flag IS NULL OR NOT instr(raw_flag, char(0))))) "
    "FROM (SELECT b.epoch AS epoch, b.seq AS seq, v.id - b.first_row AS idx, "
    "(v.observed_us - :day) / 1000000 AS second, (v.observed_us - :day) % 1000000 AS micro, "
    "CAST(v.value AS TEXT) AS t, v.value AS value, v.source_flag AS raw_flag, "
    f"v.qc AS qc, {flag} AS flag FROM observation_values v JOIN batches b ON "
    f"b.id = v.batch_id WHERE {_AFTER} ORDER BY v.observed_us, v.id LIMIT :size)")
    for fmt, flag in (("csv", _CSV_FLAG.replace("{", "{{").replace("}", "}}")),
                      ("json", _JSON_FLAG))}
_NEXT_ROW = (f"SELECT v.observed_us FROM observation_values v WHERE {_AFTER} "
             "ORDER BY v.observed_us, v.id LIMIT 1")
# a chunk's last row: the newest in its range where it took every row of that range,
# else the one its LIMIT stopped at
_LAST_ROW = (f"SELECT v.observed_us, v.id FROM observation_values v WHERE {_AFTER} "
             "ORDER BY v.observed_us DESC, v.id DESC LIMIT 1")
_NTH_ROW = (f"SELECT v.observed_us, v.id FROM observation_values v WHERE {_AFTER} "
            "ORDER BY v.observed_us, v.id LIMIT 1 OFFSET :offset")
# a line's time in SQL: the day's date (a parameter) and the time of day
_SQL_TIME = "%s%02d:%02d:%02d.%06d"


def _literal(text: str) -> str:
    return text.replace("%", "%%")


def _csv_format(series_row: tuple, time: str = "%s.%06d", tail: str = "%.0s%.0s") -> str:
    """A series' line as a %-format (Python's, or SQLite printf()'s with the SQL time)."""
    _series, station, element, unit, field, period, _lat, _lon = series_row
    const = lambda text: _literal(csv_field(text))  # noqa: E731
    return (f"obslink:{_literal(station)}/%s/%s/%s,{const(station)},{time}Z,"
            f"{const(element)},{const(unit)},%s,%s,%s,{const(field)},"
            f"{'' if period is None else period}\n{tail}")


def _json_format(series_row: tuple, time: str = "%s.%06d", tail: str = "%.0s%.0s") -> str:
    _series, station, element, unit, field, period, _lat, _lon = series_row
    const = lambda text: _literal(json.dumps(text, ensure_ascii=False))  # noqa: E731
    return (f'{{"id": "obslink:{_literal(station)}/%s/%s/%s", "station": {const(station)}, '
            f'"observed_at": "{time}Z", "element": {const(element)}, "unit": '
            f'{const(unit)}, "value": %s, "qc": %s, "source_flag": %s, "source_field": '
            f'{const(field)}, "period_s": {"null" if period is None else period}}},{tail}')


LINE_FORMATS = {"csv": _csv_format, "json": _json_format}
