"""Monitoring's counts, kept as each group commits (docs/monitoring.md): per station and
hour of observation, the readings received, usable, erroneous and QC-checked, and how
late they arrived (observed → committed) in cumulative buckets; per station when it last
committed and its newest batch's clock. Per element, the catalog counts a station's rows
when asked (one station's period is a few thousand)."""

from __future__ import annotations

import sqlite3
from bisect import bisect_left

from obslink.readings import QC_ERRONEOUS, QC_GOOD, QC_NOT_CHECKED, QC_SUSPECT

HOUR_US = 3_600_000_000
#: the latency buckets' upper bounds in seconds: the programme's 60 s, WDQMS's 15 / 30 /
#: 120 minutes, and steps between them for percentiles
LATENCY_BOUNDS_S = (10, 30, 60, 120, 300, 900, 1800, 3600, 7200)
WITHIN_COLUMNS = tuple(f"within_{bound}" for bound in LATENCY_BOUNDS_S)
COUNT_COLUMNS = ("received", "usable", "erroneous", "checked", "latency_sum") + WITHIN_COLUMNS

_HOURS = (
    f"INSERT INTO monitor_hours (station, hour, {', '.join(COUNT_COLUMNS)}) "
    f"VALUES ({', '.join('?' * (2 + len(COUNT_COLUMNS)))}) "
    "ON CONFLICT (station, hour) DO UPDATE SET "
    + ", ".join(f"{column} = {column} + excluded.{column}" for column in COUNT_COLUMNS))
_STATIONS = (
    "INSERT INTO monitor_stations (station, last_committed_us, clock_synced, clock_offset_ms) "
    "VALUES (?,?,?,?) ON CONFLICT (station) DO UPDATE SET "
    "last_committed_us = excluded.last_committed_us, clock_synced = excluded.clock_synced, "
    "clock_offset_ms = excluded.clock_offset_ms")


class ArrivalCounts:
    """A group's counts per station and hour, made from the batches' columns as they are
    inserted (C-level list operations per batch: no SQL and no Python loop per reading
    for a batch within one hour, which live records and most backlog batches are), and
    written in one statement at the end of the group."""

    def __init__(self, committed_us: int) -> None:
        self.now = committed_us
        self.sums: dict[tuple[str, int], list] = {}
        self.stations: dict[str, tuple] = {}

    def add(self, station: str, times: list[int], values: list, qcs: list[int],
            clock: tuple[int | None, float | None]) -> None:
        self.stations[station] = (station, self.now, *clock)  # the newest batch's stays
        if not times:
            return
        first, last = min(times), max(times)
        if first // HOUR_US == last // HOUR_US:
            self._add_hour(station, first - first % HOUR_US, times, values, qcs)
            return
        by_hour: dict[int, list[int]] = {}
        for index, time in enumerate(times):
            by_hour.setdefault(time - time % HOUR_US, []).append(index)
        for hour, indexes in by_hour.items():
            self._add_hour(station, hour, [times[i] for i in indexes],
                           [values[i] for i in indexes], [qcs[i] for i in indexes])

    def _add_hour(self, station: str, hour: int, times: list[int], values: list,
                  qcs: list[int]) -> None:
        found = self.sums.get((station, hour))
        if found is None:
            found = self.sums[(station, hour)] = [0, 0, 0, 0, 0.0] + [0] * len(
                LATENCY_BOUNDS_S)
        received, now = len(times), self.now
        found[0] += received
        good = qcs.count(QC_GOOD) + qcs.count(QC_SUSPECT)
        if good and None in values:  # a good or suspect flag on a missing value: rare
            good = sum(1 for value, qc in zip(values, qcs)
                       if value is not None and qc in (QC_GOOD, QC_SUSPECT))
        found[1] += good
        found[2] += qcs.count(QC_ERRONEOUS)
        found[3] += received - qcs.count(QC_NOT_CHECKED)
        newest, oldest = max(times), min(times)
        if newest <= now:
            found[4] += (received * now - sum(times)) / 1e6
        else:  # readings from the future (a wrong clock) count as no delay
            found[4] += sum(max(now - time, 0) for time in times) / 1e6
        if oldest >= now - LATENCY_BOUNDS_S[0] * 1_000_000:  # live: within every bound
            for index in range(len(LATENCY_BOUNDS_S)):
                found[5 + index] += received
        elif newest >= now - LATENCY_BOUNDS_S[-1] * 1_000_000:  # else backlog: within none
            ordered = sorted(times)
            for index, bound in enumerate(LATENCY_BOUNDS_S):
                found[5 + index] += received - bisect_left(ordered, now - bound * 1_000_000)

    def write(self, conn: sqlite3.Connection) -> None:
        conn.executemany(_HOURS, [(station, hour, *counts)
                                  for (station, hour), counts in self.sums.items()])
        conn.executemany(_STATIONS, list(self.stations.values()))
