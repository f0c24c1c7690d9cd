"""Monitoring's counts, kept as each group commits (docs/monitoring.md): per station and
hour of observation, the readings received, usable, erroneous and QC-checked, and how
late they arrived (observed → committed) in cumulative buckets; per station when it last
committed and its newest batch's clock. Per element, the catalog counts a station's rows
when asked (one station's period is a few thousand)."""

from __future__ import annotations

import sqlite3
from bisect import bisect_left
from itertools import accumulate

from obslink.readings import QC_ERRONEOUS, QC_GOOD, QC_NOT_CHECKED, QC_SUSPECT

HOUR_US = 3_600_000_000
#: the latency buckets' upper bounds in seconds: the programme's 60 s, WDQMS's 15 / 30 /
#: 120 minutes, and steps between them for percentiles
LATENCY_BOUNDS_S = (10, 30, 60, 120, 300, 900, 1800, 3600, 7200)
_BOUNDS_US = tuple(bound * 1_000_000 for bound in LATENCY_BOUNDS_S)
WITHIN_COLUMNS = tuple(f"within_{bound}" for bound in LATENCY_BOUNDS_S)
COUNT_COLUMNS = ("received", "usable", "erroneous", "checked", "latency_sum") + WITHIN_COLUMNS

_HOURS = (
    f"INSERT INTO monitor_hours (station, hour, {', '.join(COUNT_COLUMNS)}) "
    f"VALUES ({', '.join('?' * (2 + len(COUNT_COLUMNS)))}) "
    "ON CONFLICT (hour, station) DO UPDATE SET "
    + ", ".join(f"{column} = monitor_hours.{column} + excluded.{column}"
                for column in COUNT_COLUMNS))
_STATIONS = (
    "INSERT INTO monitor_stations (station, last_committed_us, clock_synced, clock_offset_ms) "
    "VALUES (?,?,?,?) ON CONFLICT (station) DO UPDATE SET "
    "last_committed_us = excluded.last_committed_us, clock_synced = excluded.clock_synced, "
    "clock_offset_ms = excluded.clock_offset_ms")


class ArrivalCounts:
    """A group's counts per station and hour, made from the batches' columns as they are
    inserted (C-level list operations per batch: no SQL and no Python loop per reading
    for a batch within one hour, which live records and most backlog batches are), and
    written in one statement at the end of the group. Until then a latency count is kept
    in its own bucket only, and made cumulative (within_*) when written."""

    def __init__(self, committed_us: int) -> None:
        self.now = committed_us
        self.sums: dict[tuple[str, int], list] = {}
        self.stations: dict[str, tuple] = {}

    def add(self, station: str, times: list[int], values: list, qcs: list[int],
            clock: tuple[int | None, float | None]) -> None:
        self.stations[station] = (station, self.now, *clock)  # the newest batch's stays
        if not times:
            return
        first = times[0]
        received = len(times)
        if times.count(first) == received:  # one record (a live batch): one time
            found = self._sums(station, first - first % HOUR_US)
            found[0] += received
            self._flags(found, received, values, qcs)
            late = self.now - first
            if late > 0:
                found[4] += late * received / 1e6
            bucket = bisect_left(_BOUNDS_US, late)
            if bucket < len(_BOUNDS_US):
                found[5 + bucket] += received
            return
        oldest, newest = min(times), max(times)
        if oldest // HOUR_US == newest // HOUR_US:
            self._add_hour(station, oldest - oldest % HOUR_US, times, values, qcs)
            return
        by_hour: dict[int, list[int]] = {}
        for index, time in enumerate(times):
            by_hour.setdefault(time - time % HOUR_US, []).append(index)
        for hour, indexes in by_hour.items():
            self._add_hour(station, hour, [times[i] for i in indexes],
                           [values[i] for i in indexes], [qcs[i] for i in indexes])

    def _sums(self, station: str, hour: int) -> list:
        found = self.sums.get((station, hour))
        if found is None:
            found = self.sums[(station, hour)] = [0, 0, 0, 0, 0.0] + [0] * len(_BOUNDS_US)
        return found

    @staticmethod
    def _flags(found: list, received: int, values: list, qcs: list[int]) -> None:
        """usable, erroneous and checked of ``received`` readings."""
        if qcs.count(QC_GOOD) == received and None not in values:  # the usual batch
            found[1] += received
            found[3] += received
            return
        good = qcs.count(QC_GOOD) + qcs.count(QC_SUSPECT)
        if good and None in values:  # a good or suspect flag on a missing value: rare
            good = sum(1 for value, qc in zip(values, qcs)
                       if value is not None and qc in (QC_GOOD, QC_SUSPECT))
        found[1] += good
        found[2] += qcs.count(QC_ERRONEOUS)
        found[3] += received - qcs.count(QC_NOT_CHECKED)

    def _add_hour(self, station: str, hour: int, times: list[int], values: list,
                  qcs: list[int]) -> None:
        found = self._sums(station, hour)
        received, now = len(times), self.now
        found[0] += received
        self._flags(found, received, values, qcs)
        newest, oldest = max(times), min(times)
        if newest <= now:
            found[4] += (received * now - sum(times)) / 1e6
        else:  # readings from the future (a wrong clock) count as no delay
            found[4] += sum(max(now - time, 0) for time in times) / 1e6
        if now - oldest <= _BOUNDS_US[0]:  # live: all in the first bucket
            found[5] += received
        elif now - newest <= _BOUNDS_US[-1]:  # else backlog older than all: in none
            ordered = sorted(times)
            within = 0
            for index, bound in enumerate(_BOUNDS_US):
                now_within = received - bisect_left(ordered, now - bound)
                found[5 + index] += now_within - within
                within = now_within

    def write(self, conn: sqlite3.Connection) -> None:
        conn.executemany(_HOURS, [(station, hour, *counts[:5], *accumulate(counts[5:]))
                                  for (station, hour), counts in self.sums.items()])
        conn.executemany(_STATIONS, list(self.stations.values()))
