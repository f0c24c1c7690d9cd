"""What a data user asks of the catalog's observations (docs/api.md): the query, and the
cursor that pages through its answer. Every backend answers in the same order: series by
series (a station's element from one source field), each in time order, so that a cursor
is a position in an index and a page never sorts; rows committed while a user pages
through arrive at most once."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from obslink.errors import ObslinkError
from obslink.readings import MAX_TIME_US, MIN_TIME_US, format_utc
from obslink.server.catalog.identifiers import observation_id


INT64_MAX = 2**63 - 1  # SQLite's largest integer


class QueryError(ObslinkError):
    """A query the catalog cannot answer as asked (a bad cursor, an empty range)."""


@dataclass(frozen=True)
class ObservationQuery:
    stations: tuple[str, ...] = ()  # empty: every station
    elements: tuple[str, ...] = ()  # empty: every element
    start_us: int | None = None  # observed at or after
    end_us: int | None = None  # observed at or before
    bbox: tuple[float, float, float, float] | None = None  # min lon, min lat, max lon, max lat
    qc: tuple[int, ...] = ()  # only these QC flags; empty: any
    missing: bool = True  # include readings whose value is missing
    # only stations whose surface dataset has one of these classification levels (an
    # account's clearance, docs/access.md); empty: any
    levels: tuple[str, ...] = ()


@dataclass(frozen=True, order=True)
class Cursor:
    """Just after this row: (series, observed µs, row id)."""

    series: int
    observed_us: int
    row: int

    def __str__(self) -> str:
        return f"{self.series}.{self.observed_us}.{self.row}"

    @classmethod
    def parse(cls, text: str) -> "Cursor":
        found = re.fullmatch(r"(\d{1,19})\.(-?\d{1,18})\.(\d{1,19})", text)
        series, observed_us, row = map(int, found.groups()) if found else (0, 0, 0)
        if not found or series > INT64_MAX or row > INT64_MAX or not (
                MIN_TIME_US <= observed_us <= MAX_TIME_US):
            raise QueryError(f"cursor {text!r} is not one this API gave out; use the `next` "
                             "link of the previous page as it is")
        return cls(series, observed_us, row)


@dataclass(frozen=True)
class ObservationRow:
    """One observation as a query returns it."""

    station: str
    epoch: str
    seq: int
    index: int  # in its signed batch
    element: str
    unit: str
    source_field: str
    period_s: int | None
    observed_us: int
    value: float | None
    source_flag: str | None
    qc: int
    latitude: float | None
    longitude: float | None
    cursor: Cursor


# The text forms of an observation (docs/api.md). Every backend's observation_text must
# give exactly these (the SQLite backend builds them in SQL, tests/test_catalog_api.py
# compares); these Python versions are the reference and the default.
CSV_COLUMNS = ("id", "station", "observed_at", "element", "unit", "value", "qc",
               "source_flag", "source_field", "period_s")
TEXT_FORMATS = ("csv", "json")


def csv_field(text: str) -> str:
    """As Python's csv module writes a field (QUOTE_MINIMAL, lines ending in \\n)."""
    if any(special in text for special in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def observation_fields(row: ObservationRow) -> dict:
    return {"id": observation_id(row.station, row.epoch, row.seq, row.index),
            "station": row.station, "observed_at": format_utc(row.observed_us, fixed=True),
            "element": row.element, "unit": row.unit, "value": row.value, "qc": row.qc,
            "source_flag": row.source_flag, "source_field": row.source_field,
            "period_s": row.period_s}


def csv_line(row: ObservationRow) -> str:
    fields = observation_fields(row)
    return ",".join("" if fields[name] is None else csv_field(str(fields[name]))
                    for name in CSV_COLUMNS) + "\n"


def json_object(row: ObservationRow) -> str:
    return json.dumps(observation_fields(row), ensure_ascii=False)
