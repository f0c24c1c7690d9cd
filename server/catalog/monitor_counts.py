"""Monitoring's counts, kept as each group commits (docs/monitoring.md): per series and
hour of observation, the readings received, usable, erroneous and QC-checked, and how
late they arrived (observed → committed) in cumulative buckets; per series the first and
last observation and when it last grew; per station when it last committed and its
newest batch's clock. SQL aggregates the group's new rows where they lie (in the page
cache), so ingest runs no Python per reading for it."""

from __future__ import annotations

import sqlite3

from obslink.readings import QC_ERRONEOUS, QC_GOOD, QC_NOT_CHECKED, QC_SUSPECT

HOUR_US = 3_600_000_000
#: the latency buckets' upper bounds in seconds: the programme's 60 s, WDQMS's 15 / 30 /
#: 120 minutes, and steps between them for percentiles
LATENCY_BOUNDS_S = (10, 30, 60, 120, 300, 900, 1800, 3600, 7200)
WITHIN_COLUMNS = tuple(f"within_{bound}" for bound in LATENCY_BOUNDS_S)
COUNT_COLUMNS = ("received", "usable", "erroneous", "checked", "latency_sum") + WITHIN_COLUMNS

_HOUR_OF = f"observed_us - ((observed_us % {HOUR_US}) + {HOUR_US}) % {HOUR_US}"
_WITHIN = ", ".join(f"sum(observed_us >= :now - {bound * 1_000_000})"
                    for bound in LATENCY_BOUNDS_S)
_HOURS = (
    f"INSERT INTO monitor_hours (series, hour, {', '.join(COUNT_COLUMNS)}) "
    f"SELECT series, {_HOUR_OF}, count(*), "
    f"sum(value IS NOT NULL AND qc IN ({QC_GOOD}, {QC_SUSPECT})), sum(qc = {QC_ERRONEOUS}), "
    f"sum(qc != {QC_NOT_CHECKED}), sum(max(:now - observed_us, 0)) / 1e6, {_WITHIN} "
    "FROM observation_values WHERE id >= :first GROUP BY 1, 2 "
    "ON CONFLICT (series, hour) DO UPDATE SET "
    + ", ".join(f"{column} = {column} + excluded.{column}" for column in COUNT_COLUMNS))
_SERIES = (
    "INSERT INTO monitor_series (series, first_us, last_us, last_committed_us) "
    "SELECT series, min(observed_us), max(observed_us), :now FROM observation_values "
    "WHERE id >= :first GROUP BY series ON CONFLICT (series) DO UPDATE SET "
    "first_us = min(first_us, excluded.first_us), last_us = max(last_us, excluded.last_us), "
    "last_committed_us = excluded.last_committed_us")
_STATIONS = (
    "INSERT INTO monitor_stations (station, last_committed_us, clock_synced, clock_offset_ms) "
    "VALUES (?,?,?,?) ON CONFLICT (station) DO UPDATE SET "
    "last_committed_us = excluded.last_committed_us, clock_synced = excluded.clock_synced, "
    "clock_offset_ms = excluded.clock_offset_ms")


def count_arrivals(conn: sqlite3.Connection, first_row: int, committed_us: int,
                   stations: list[tuple[str, int, int | None, float | None]]) -> None:
    """Count observation rows from ``first_row`` on (the group's) as committed at
    ``committed_us``; ``stations``: (station, committed_us, clock synced, clock offset) of
    each new batch in commit order (the last one of a station stays)."""
    marks = {"now": committed_us, "first": first_row}
    conn.execute(_HOURS, marks)
    conn.execute(_SERIES, marks)
    conn.executemany(_STATIONS, list({row[0]: row for row in stations}.values()))
