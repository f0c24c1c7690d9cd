"""Observation text (the API's CSV and JSON streams) on PostgreSQL: a chunk of a series'
rows (read several series a statement: postgres_series.py) comes with its time of day
already written by the database (to_char), and Python
fills the series' line format with each row's parts, a chunk at a time, not a row
object and a dictionary a row as the reference (queries.csv_line / json_object) does.
Values are written as Python writes them (str, or json.dumps where JSON has no number for
them), so the text is the reference's to the byte: tests/test_catalog_api.py compares
every line on both backends."""

from __future__ import annotations

import json
from typing import Iterator

from obslink.server.catalog.postgres_series import PostgresSeries
from obslink.server.catalog.queries import (Cursor, ObservationQuery, csv_field, csv_line,
                                            json_object)
from obslink.server.catalog.sqlite_queries import LINE_FORMATS, PLAIN_EPOCH, observation_rows

_MICROS = "((v.observed_us % 1000000) + 1000000) % 1000000"
# to the second, as format_utc writes it (floor division: a time before 1970 is negative)
_SECOND = (f"to_char(to_timestamp((v.observed_us - {_MICROS}) / 1000000) AT TIME ZONE "
           "'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS')")
TEXT_COLUMNS = (f"b.epoch, b.seq, v.id - b.first_row, {_SECOND}, {_MICROS}, v.value, v.qc, "
                "v.source_flag")


class PostgresText(PostgresSeries):
    """Mixed into PostgresCatalog before the SQLite modules: observation_text from the
    grouped chunks of postgres_series.py. (Text with a NUL, which SQLite's reference path
    is for, cannot be stored here: docs/scaling.md.)"""

    def observation_text(self, query: ObservationQuery, after: Cursor | None = None,
                         fmt: str = "csv", limit: int | None = None
                         ) -> Iterator[tuple[str, Cursor, int]]:
        formats = {}  # a series' line format, made once
        for series_row, rows in self._grouped_chunks(query, after, TEXT_COLUMNS, limit):
            if series_row[0] not in formats:
                formats.clear()  # series come one after another: only the current one
                formats[series_row[0]] = LINE_FORMATS[fmt](series_row)
            yield chunk_text(series_row, rows, fmt, formats[series_row[0]])


def chunk_text(series_row: tuple, rows: list, fmt: str, line: str) -> tuple[str, Cursor, int]:
    """A chunk of a series' rows (TEXT_COLUMNS, then observed_us and id) as the text of
    queries.csv_line / json_object, with the cursor after it and its row count."""
    as_csv = fmt == "csv"
    cursor = Cursor(series_row[0], *rows[-1][-2:])
    if not all(PLAIN_EPOCH.fullmatch(epoch) for epoch in {row[0] for row in rows}):
        # an epoch the line format cannot hold unquoted: the reference writes it
        reference = csv_line if as_csv else (lambda row: json_object(row) + ",")
        return "".join(map(reference, observation_rows(series_row, [
            (value, flag, qc, epoch, seq, index, at, row) for
            epoch, seq, index, _second, _micro, value, qc, flag, at, row in rows]))
        ), cursor, len(rows)
    missing = "" if as_csv else "null"
    flag_text = csv_field if as_csv else (lambda flag: json.dumps(flag, ensure_ascii=False))
    text = "".join([line % (
        epoch, seq, index, second, micro,
        missing if value is None else
        value if as_csv or value - value == 0 else json.dumps(value),  # NaN, ±inf
        qc, missing if flag is None else flag_text(flag), at, row)  # (%.0s: unwritten)
        for epoch, seq, index, second, micro, value, qc, flag, at, row in rows])
    return text, cursor, len(rows)
