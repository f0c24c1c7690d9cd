"""What monitoring shows: per station (and element) and for the network over a period,
and a station's hourly and daily history (docs/monitoring.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from obslink.readings import format_utc, utc_us_from_datetime
from obslink.server.catalog.monitor_counts import HOUR_US
from obslink.server.monitoring import rules
from obslink.server.monitoring.measures import (ARRIVAL_GRACE_US, Measure, Stream,
                                                expected_count, interval_of, status_of)

DAY_US = 24 * HOUR_US


def hour_floor(us: int) -> int:
    return us - us % HOUR_US


def period_bounds(period: str, day: str | None, now: int,
                  names: tuple[str, str] = ("period", "day")) -> tuple[int, int]:
    """[start, end) of "the last ``period``" (90m, 6h, 7d …) or of a whole UTC ``day``
    (YYYY-MM-DD); ConfigError names what is wrong, calling the two as ``names`` (the CLI's
    options, the API's parameters)."""
    from datetime import date, timezone

    from obslink.errors import ConfigError
    from obslink.server.qc_report import parse_age

    if day is None:
        return now - parse_age(period, names[0]) * 1_000_000, now
    try:
        found = date.fromisoformat(day)
    except ValueError:
        raise ConfigError(f"{names[1]} {day!r}: give a date like 2026-12-06") from None
    start = int(datetime(found.year, found.month, found.day, tzinfo=timezone.utc
                         ).timestamp()) * 1_000_000
    return start, start + DAY_US


@dataclass
class NetworkState:
    """What the reports and the alarm rules read from the catalog at one moment."""

    now_us: int
    stations: dict[str, dict]
    streams: dict[str, list[Stream]]
    schedules: dict[tuple[str, str], int]
    default_interval_s: int
    rules: dict[tuple[str, str], dict]

    @classmethod
    def read(cls, catalog, now_us: int, station: str | None = None) -> "NetworkState":
        streams: dict[str, list[Stream]] = {}
        for row in catalog.monitor_streams(station):
            streams.setdefault(row[0], []).append(Stream(*row))
        stations = {found["id"]: found for found in catalog.monitor_stations()
                    if station is None or found["id"] == station}
        default = int(catalog.catalog_settings().get("default_interval_s", 60))
        return cls(now_us, stations, streams, catalog.schedules(station), default,
                   catalog.alarm_rules())

    def interval(self, stream: Stream) -> int:
        return interval_of(stream, self.schedules,
                           self.stations.get(stream.station, {}).get("interval_seconds"),
                           self.default_interval_s)

    def shortest_interval(self, station: str) -> int:
        found = self.stations[station]
        intervals = [self.interval(s) for s in self.streams.get(station, [])]
        return min(intervals, default=found["interval_seconds"] or self.default_interval_s)

    def retired_us(self, station: str) -> int | None:
        retired = self.stations[station]["retired_at"]
        return None if retired is None else utc_us_from_datetime(
            datetime.fromisoformat(retired.replace("Z", "+00:00")))

    def expected(self, stream: Stream, start_us: int, end_us: int) -> int:
        """Readings of ``stream`` expected in [start_us, end_us): from its first
        observation, not in the last minute (they may be on their way), not after the
        station's retirement."""
        end = min(end_us, self.now_us - ARRIVAL_GRACE_US)
        retired = self.retired_us(stream.station)
        if retired is not None:
            end = min(end, retired)
        return expected_count(self.interval(stream), max(start_us, stream.first_us), end)

    def silent_for(self, station: str) -> float | None:
        """Intervals since the station last committed (None: never)."""
        last = self.stations[station]["last_committed_us"]
        if last is None:
            return None
        return (self.now_us - last) / 1e6 / self.shortest_interval(station)

    def is_silent(self, station: str) -> bool:
        if self.retired_us(station) is not None:
            return False
        silent = self.silent_for(station)
        limit = rules.effective(self.rules, station, "silent")["intervals"]
        return silent is None or silent >= limit


def period_report(catalog, start_us: int, end_us: int, now_us: int,
                  station: str | None = None, elements: bool = False,
                  hidden: set[str] | frozenset = frozenset()) -> dict:
    """Every station's (or one's) measures over the hours starting in [start_us, end_us),
    with the network's roll-up; with ``elements``, each station's per element (counted
    from its rows: meant for one station). ``hidden`` stations (an account not cleared for
    their data, docs/access.md) are left out, of the roll-up too."""
    state = NetworkState.read(catalog, now_us, station)
    start_us, end_us = hour_floor(start_us), -(-end_us // HOUR_US) * HOUR_US
    per_station = {sid: Measure(start_us, end_us) for sid in state.stations
                   if sid not in hidden}
    for sid, streams in state.streams.items():
        if sid in per_station:
            per_station[sid].expected = sum(state.expected(s, start_us, end_us)
                                            for s in streams)
    for row in catalog.monitor_counts(start_us, end_us, station):
        if row[0] in per_station:
            per_station[row[0]].counts.add(row[1:])
    network = Measure(start_us, end_us)
    listed = []
    for sid, measure in per_station.items():
        found = state.stations[sid]
        network.expected += measure.expected
        network.counts.add((measure.counts.received, measure.counts.usable,
                            measure.counts.erroneous, measure.counts.checked,
                            measure.counts.latency_sum, *measure.counts.within))
        silent = state.is_silent(sid)
        entry = {"station": sid, "name": found["name"], "network": found["network"],
                 "latitude": found["latitude"], "longitude": found["longitude"],
                 "retired": found["retired_at"] is not None,
                 "status": status_of(measure, silent), "silent": silent,
                 "last_committed_at": _utc(found["last_committed_us"]),
                 "interval_s": state.shortest_interval(sid), **measure.as_dict()}
        if elements:
            entry["elements"] = _elements(catalog, state, sid, start_us, end_us)
        listed.append(entry)
    statuses = [entry["status"] for entry in listed if not entry["retired"]]
    return {"start": format_utc(start_us), "end": format_utc(end_us),
            "now": format_utc(now_us), "network": {
                **network.as_dict(), "stations": len(statuses),
                "by_status": {status: statuses.count(status) for status in
                              ("complete", "below", "not-reporting")}},
            "stations": listed}


def _elements(catalog, state: NetworkState, station: str, start_us: int,
              end_us: int) -> list[dict]:
    """A station's measures per element (stream) over [start_us, end_us); arrival times
    are counted per station, so an element's carry no timeliness."""
    streams = {(s.element, s.period_s): s for s in state.streams.get(station, [])}
    measures = {key: Measure(start_us, end_us, state.expected(stream, start_us, end_us))
                for key, stream in streams.items()}
    for element, period, *counts in catalog.element_counts(station, start_us, end_us):
        measures.setdefault((element, period), Measure(start_us, end_us)).counts.add(
            (*counts, 0.0))
    return [{"element": element, "period_s": period,
             "interval_s": state.interval(streams[(element, period)])
             if (element, period) in streams else None,
             **measure.as_dict(timeliness=False)}
            for (element, period), measure in sorted(measures.items(),
                                                     key=lambda item: (item[0][0],
                                                                       item[0][1] or 0))]


def station_history(catalog, station: str, now_us: int, hours: int = 24,
                    days: int = 30) -> dict:
    """A station's measures per hour over the last ``hours`` and per day over the last
    ``days`` (the dashboard's plots)."""
    state = NetworkState.read(catalog, now_us, station)
    if station not in state.stations:
        catalog.get(station)  # raises NoSuchStationError naming it
    streams = state.streams.get(station, [])
    this_hour, today = hour_floor(now_us), now_us - now_us % DAY_US
    hourly = _buckets(catalog, state, station, streams, this_hour - (hours - 1) * HOUR_US,
                      HOUR_US, hours)
    daily = _buckets(catalog, state, station, streams, today - (days - 1) * DAY_US,
                     DAY_US, days)
    return {"station": station, "now": format_utc(now_us), "hourly": hourly, "daily": daily}


def _buckets(catalog, state: NetworkState, station: str, streams: list[Stream],
             start_us: int, step_us: int, count: int) -> list[dict]:
    measures = [Measure(start_us + i * step_us, start_us + (i + 1) * step_us)
                for i in range(count)]
    for measure in measures:
        measure.expected = sum(state.expected(s, measure.start_us, measure.end_us)
                               for s in streams)
    for row in catalog.monitor_counts(start_us, start_us + count * step_us, station,
                                      by_hour=True):
        measures[(row[1] - start_us) // step_us].counts.add(row[2:])
    return [{"start": format_utc(m.start_us), **m.as_dict()} for m in measures]


def _utc(us: int | None) -> str | None:
    return None if us is None else format_utc(us)
