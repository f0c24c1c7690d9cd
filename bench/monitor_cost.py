"""What monitoring costs and how fast it answers: `.venv/bin/python bench/monitor_cost.py
[--quick]`.

- Ingest: the collector's own pipeline (bench/log_cost.py's, no broker) takes the same
  signed messages into a catalog that keeps monitoring's hourly counts (the default) and
  one that does not, in pairs (a group to each in turn, so the machine's drift falls on
  both alike), for live batches sent alone and backlog bundles of 32. Target (issue 19):
  at most 5 %.
- A day's completeness for 1,000 stations (3 elements a minute: 4.3 million readings)
  from the hourly counts (`obslink monitor network --day`), beside sqlite3 counting the
  same day's rows per station in the same run.
- Silence to alarm: a station with a 5 s interval commits a batch and stops; the watch
  runs every second on the 1,000-station catalog, as the collector's does, every rule
  evaluated for every station; measured: the seconds until its silent alarm (the rule: 2
  intervals), and one evaluation's time.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from catalog_queries import DAY, ELEMENTS, T0, build
from log_cost import ELEMENTS as LIVE_ELEMENTS, messages, paired_seconds
from obslink import wire
from obslink.readings import Reading, now_us
from obslink.server.catalog import AcceptedBatch, Station, open_catalog
from obslink.server.catalog.sqlite import SQLiteCatalog
from obslink.server.monitoring.report import period_report
from obslink.server.monitoring.watch import Watch


class CatalogWithoutMonitoring(SQLiteCatalog):
    monitoring = False


def ingest_cost(directory: Path, stations: int, minutes: int, repeat: int) -> None:
    keys = [Ed25519PrivateKey.generate() for _ in range(stations)]
    for label, bundle in (("live, a batch of 7 readings a message", 1),
                          ("backlog, bundles of 32 batches", 32)):
        payloads = messages(stations, minutes, bundle, keys)
        ratios = []
        for _ in range(repeat):
            with_it, without = paired_seconds(directory, keys, payloads,
                                              (SQLiteCatalog, CatalogWithoutMonitoring))
            ratios.append(with_it / without)
        readings = stations * minutes * len(LIVE_ELEMENTS)
        print(f"ingest, {label}: {readings:,} readings, {repeat} paired runs: with / without "
              f"monitoring = {', '.join(f'{r:.3f}' for r in ratios)} (median cost "
              f"{100 * (statistics.median(ratios) - 1):.1f} %)", flush=True)


def day_completeness(path: Path, stations: int) -> None:
    day_start, now = T0, T0 + 2 * DAY  # the built catalog's first day, seen a day later
    catalog = open_catalog(path)
    times = []
    for _ in range(5):
        started = time.perf_counter()
        report = period_report(catalog, day_start, day_start + DAY, now)
        times.append(time.perf_counter() - started)
    catalog.close()
    raw = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    raw_times = []
    for _ in range(5):
        started = time.perf_counter()
        counted = raw.execute(
            "SELECT s.station, count(*) FROM observation_values v JOIN series s ON "
            "s.id = v.series WHERE v.observed_us >= ? AND v.observed_us < ? GROUP BY "
            "s.station", (day_start, day_start + DAY)).fetchall()
        raw_times.append(time.perf_counter() - started)
    raw.close()
    network = report["network"]
    assert len(counted) == stations + 1 and network["received"] == sum(c for _, c in counted)
    print(f"a day's completeness, {len(report['stations']):,} stations, "
          f"{network['received']:,} readings (completeness {network['completeness']:.3f}): "
          f"{statistics.median(times) * 1000:.0f} ms from the hourly counts; sqlite3 "
          f"counting the rows {statistics.median(raw_times) * 1000:.0f} ms (ratio "
          f"{statistics.median(times) / statistics.median(raw_times):.3f}; medians of 5)",
          flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stations", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None,
                        help="keep the 1,000-station catalog here and reuse it")
    parser.add_argument("--quick", action="store_true", help="100 stations, 1 paired run")
    args = parser.parse_args()
    if args.quick:
        args.stations, args.repeat = 100, 1
    with tempfile.TemporaryDirectory() as scratch:
        directory = args.dir or Path(scratch)
        directory.mkdir(parents=True, exist_ok=True)
        ingest_cost(Path(scratch), 100, 64 if args.quick else 192, args.repeat)
        path = directory / f"monitor-{args.stations}x1d.db"
        if not path.exists():
            print(f"building {path}: {args.stations} stations × 1 day, "
                  f"{len(ELEMENTS)} elements a minute", flush=True)
            build(path.with_suffix(".partial"), args.stations, 1, 1)
            for suffix in ("", "-wal", "-shm"):
                partial = Path(f"{path.with_suffix('.partial')}{suffix}")
                if partial.exists():
                    partial.rename(f"{path}{suffix}")
        day_completeness(path, args.stations)
        silence(path, interval_s=5)
    return 0


def silence(path: Path, interval_s: int, station: str = "SILENCE-BENCH") -> None:
    """A station's last batch, then silence: seconds until the watch raises its alarm. The
    station is one of its own (the day's stations keep their schedule), and the silent
    rule is the only one on, for it alone: the built stations fell silent when the build
    ended, and each would raise an alarm."""
    catalog = open_catalog(path)
    if not catalog.station_exists(station):
        catalog.add_station(Station(station, "bench", interval_seconds=interval_s), None, None)
    catalog.set_alarm_rule("", "silent", {"enabled": False})
    catalog.set_alarm_rule(station, "silent", {"enabled": True})
    catalog.commit([fresh_batch(station)])
    committed = catalog.monitor_stations()
    last = next(s["last_committed_us"] for s in committed if s["id"] == station)
    watch = Watch(catalog, lambda *message: None, every_s=1.0)
    watch.run_once()  # clears the alarm a previous run on this catalog left open
    evaluations = []
    while True:
        started = time.perf_counter()
        events = watch.run_once()
        evaluations.append(time.perf_counter() - started)
        if any(e["station"] == station and e["rule"] == "silent" for e in events):
            break
        time.sleep(max(0.0, 1.0 - evaluations[-1]))  # the collector's cadence
    raised = catalog.alarms(station)[0]["raised_us"]
    catalog.close()
    print(f"silence to alarm: {(raised - last) / 1e6:.1f} s for a {interval_s} s interval "
          f"({(raised - last) / 1e6 / interval_s:.1f} intervals; the rule fires at 2, the "
          f"target is within 3); one evaluation of the rules over "
          f"{len(committed):,} stations {statistics.median(evaluations) * 1000:.0f} ms "
          f"(median of {len(evaluations)})", flush=True)


def fresh_batch(station: str) -> AcceptedBatch:
    """A batch of the station's elements observed now."""
    now = now_us()
    readings = [Reading(now, element, 1.0, unit, field, None, 0, None, 0, 0)
                for element, unit, field in ELEMENTS]
    body = wire.encode_batch(wire.Batch(station, "fresh", now, now, readings, "bench", "1"))
    return AcceptedBatch(wire.decode_batch_columns(body), wire.data_topic("bench", station),
                         "kid", bytes(64), body, now)


if __name__ == "__main__":
    sys.exit(main())
