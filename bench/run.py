"""obslink benchmarks: `.venv/bin/python bench/run.py` (add --quick for a short run).

Each figure is printed with a baseline measured in the same run on the same machine, as a
ratio, so results from different machines can be compared:

- agent→collector: readings/s from a logger file through a real agent, Mosquitto and
  collector into the SQLite catalog, against the raw batched SQLite insert rate of the same
  rows into the same table (the floor the catalog sits on).
- decoding: readings/s of each format adapter on one core, against csv.reader merely
  splitting TOA5 rows into cells (a floor no Python text parser beats).
- QC: the agent's CPU per reading (decode, QC, encode, outbox commit) with every QC check
  against the same work with QC off: the share QC adds (target: at most 20 %).
- outbox durability: wall time of committing one logger record (7 readings, one batch,
  QC included) through the agent's sink with `synchronous = FULL` against NORMAL: the
  price of power-cut safety per commit (docs/configuration.md quotes it).

The fleet benchmark (a backlog drain under live load) runs on its own, for it takes minutes:
`.venv/bin/python bench/backlog_drain.py [--quick]`.
"""

from __future__ import annotations

import argparse
import csv
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from obslink.demo.broker import Mosquitto
from obslink.errors import ConfigError
from obslink.keys import key_id, load_public_key, public_bytes, write_keypair
from obslink.plugins.cma_hourly import CMAHourlyAdapter
from obslink.plugins.cma_minute import CMAMinuteAdapter
from obslink.plugins.formats import AdapterContext
from obslink.plugins.delimited import DelimitedAdapter
from obslink.plugins.hj212 import HJ212Adapter, frame
from obslink.plugins.toa5 import TOA5Adapter
from obslink.plugins.tob1 import TOB1Adapter
from obslink.server.catalog import Station, open_catalog
from obslink.server.catalog.sqlite_schema import MIGRATIONS
from obslink.sqlite_store import sql_statements
from obslink.demo.simulator import KINDS, SimulatedLogger, write_agent_config
from obslink.demo.simulated_cma import hourly_record, minute_line, minute_values
from obslink.demo.simulated_tob1 import write_tob1


def write_logger_file(directory: Path, records: int) -> SimulatedLogger:
    logger = SimulatedLogger("BENCH1", KINDS[0], directory,
                             datetime(2026, 1, 1, tzinfo=timezone.utc), nan_every=10**9)
    observed, line = logger.next_record()
    lines = [logger.header(), line]
    lines += [logger.next_record()[1] for _ in range(records - 1)]
    logger.path.write_text("".join(lines), newline="")
    return logger


def bench_pipeline(base: Path, records: int) -> tuple[int, float]:
    with Mosquitto(base / "broker") as broker:
        station_dir = base / "station"
        write_keypair(station_dir / "station.key", station_dir / "station.pub")
        catalog_path = base / "catalog.db"
        catalog = open_catalog(catalog_path)
        public = load_public_key(station_dir / "station.pub")
        catalog.add_station(Station("BENCH1", "bench"), public_bytes(public), key_id(public))
        catalog.close()
        collector = subprocess.Popen(
            [sys.executable, "-m", "obslink", "--log-level", "warning", "collector", "serve",
             "--db", str(catalog_path), "--broker", broker.url])
        time.sleep(1.0)  # let the collector subscribe
        logger = write_logger_file(station_dir / "logger", records)
        expected = records * logger.values_per_record
        config = write_agent_config(station_dir / "agent.toml", logger, "bench", broker.url,
                                    station_dir / "station.key", station_dir / "outbox.db")
        # the whole file is backlog (its readings are old): measure it without the rate cap
        config.write_text(config.read_text().replace(
            "[uplink]\n", "[uplink]\nbacklog_readings_per_s = 0\n"))
        started = time.perf_counter()
        agent = subprocess.Popen([sys.executable, "-m", "obslink", "--log-level", "warning",
                                  "agent", "run", str(config)])
        try:
            count = 0
            while count < expected:
                time.sleep(0.05)
                with sqlite3.connect(f"file:{catalog_path}?mode=ro", uri=True) as conn:
                    count = conn.execute("SELECT count(*) FROM observations").fetchone()[0]
                if time.perf_counter() - started > 600:
                    raise SystemExit(f"pipeline stalled at {count} of {expected} readings")
            elapsed = time.perf_counter() - started
        finally:
            for process in (agent, collector):
                process.terminate()
                process.wait()
    return expected, elapsed


def bench_raw_sqlite(base: Path, rows: int) -> float:
    """Batched executemany of the same observation rows into the catalog's own schema."""
    conn = sqlite3.connect(base / "raw.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    for _name, sql in MIGRATIONS:
        for statement in sql_statements(sql):
            conn.execute(statement)
    conn.execute("PRAGMA foreign_keys=OFF")
    batch = [(1, 1, i * 60_000_000, 20.5, None, 0, 5, 0) for i in range(5000)]
    started = time.perf_counter()
    for _ in range(rows // len(batch)):
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO observation_values (batch_id, series, observed_us, "
                         "value, source_flag, qc, qc_ran, qc_failed) VALUES (?,?,?,?,?,?,?,?)",
                         batch)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return (rows // len(batch)) * len(batch) / elapsed


def hj212_stream(packets: int) -> bytes:
    factors = ["a34004", "a34002", "a21026", "a21004", "a21005", "a05024", "a01001",
               "a01002", "a01006", "a01007", "a01008"]
    values = ";".join(f"{code}-Avg={i}.25,{code}-Flag=N" for i, code in enumerate(factors))
    return b"".join(frame(
        f"QN=20251103{n // 60 % 24:02d}{n % 60:02d}00000;ST=22;CN=2051;PW=123456;MN=AQ0001;"
        f"Flag=4;CP=&&DataTime=20251103{n // 60 % 24:02d}{n % 60:02d}00;{values}&&".encode())
        for n in range(packets))


def decode_rate(adapter_class, data: bytes, options: dict) -> float:
    best = 0.0
    for _ in range(3):
        started = time.perf_counter()
        decoded = adapter_class(AdapterContext("B", 480, options)).decode(data, start=0,
                                                                          final=True)
        best = max(best, len(decoded.readings) / (time.perf_counter() - started))
    return best


def bench_adapters(base: Path, records: int) -> tuple[dict[str, float], float]:
    """Readings/s per adapter (best of 3, one core), and the csv.reader baseline."""
    toa5 = write_logger_file(base / "decode", records).path.read_bytes()
    text_rows = toa5.decode().splitlines()[4:]
    csv_text = ("time,a,b,c,d,e,f,g\n" + "\n".join(
        row.replace('"', "").split(",", 2)[0] + "," + row.split(",", 2)[2]
        for row in text_rows) + "\n").encode()
    split_rate = csv_split_rate(text_rows)  # first, before any adapter or worker runs
    tob1, _ = write_tob1([(name, "", "IEEE4") for name in "abcdefg"],
                         [(datetime(2026, 1, 1, n // 60 % 24, n % 60), [1.5] * 7)
                          for n in range(records)])
    rates = {
        "toa5": decode_rate(TOA5Adapter, toa5, {}),
        "tob1": decode_rate(TOB1Adapter, tob1, {}),
        "hj212": decode_rate(HJ212Adapter, hj212_stream(records // 8), {}),
        "delimited": decode_rate(DelimitedAdapter, csv_text, {}),
        "cma_hourly": decode_rate(CMAHourlyAdapter, "".join(
            hourly_record("58238", datetime(2025, 1, 1) + timedelta(hours=n))
            for n in range(records // 60)).encode(), {}),
        "cma_minute": decode_rate(CMAMinuteAdapter, "".join(
            minute_line(f"{n // 60 % 24:02d}{n % 60:02d}", minute_values(n))
            for n in range(records)).encode(), {"day": "20250114"}),
    }
    try:
        from obslink.plugins.bufr import BUFRAdapter

        bufr = (Path(__file__).parent.parent / "tests" / "golden" / "bufr" /
                "compressed_three_stations" / "input.bufr").read_bytes() * (records // 30)
        rates["bufr"] = decode_rate(BUFRAdapter, bufr, {})
    except ConfigError as exc:  # ecCodes is an extra
        print(f"bufr skipped: {exc}")
    return rates, split_rate


def csv_split_rate(text_rows: list[str]) -> float:
    """Cells/s of csv.reader splitting the rows: best of 3, as the adapters are measured."""
    best = 0.0
    for _ in range(3):
        started = time.perf_counter()
        cells = sum(len(row) - 2 for row in csv.reader(text_rows))
        best = max(best, cells / (time.perf_counter() - started))
    return best


def agent_cpu_per_reading(base: Path, data: bytes, element_map: dict, qc) -> float:
    """CPU seconds per reading of what the agent does with a file: decode 64 KiB reads, run
    QC, encode batches and commit them with the position into a FULL-synchronous outbox."""
    import threading

    from obslink.agent.outbox import Outbox
    from obslink.agent.runner import OutboxSink
    from obslink.plugins.sources import ChunkOrigin, SourcePosition

    outbox = Outbox(base / f"outbox-{len(qc.names)}.db", "BENCH1")
    sink = OutboxSink(outbox, 5000, threading.Event(), qc)
    context = AdapterContext("BENCH1", 480, {}, element_map)
    readings, offset, state, read = 0, 0, None, 64 * 1024
    started = time.process_time()
    while offset < len(data):
        adapter = TOA5Adapter(context)
        adapter.set_state(state)
        chunk = data[offset:offset + read]
        decoded = adapter.decode(chunk, start=offset, final=offset + read >= len(data))
        if not decoded.consumed:
            read *= 2
            continue
        state = adapter.get_state()
        sink.commit(ChunkOrigin("logger", "bench.dat", offset, offset + decoded.consumed, b""),
                    decoded, SourcePosition(offset + decoded.consumed, "", state), adapter)
        offset += decoded.consumed
        readings += len(decoded.readings)
    elapsed = time.process_time() - started
    outbox.close()
    return elapsed / readings


def bench_qc(base: Path, records: int) -> tuple[float, float]:
    """Agent CPU µs per reading without and with every QC check (best of 5 each)."""
    from obslink.plugins.qc_limits import default_settings
    from obslink.plugins.qc_runner import QCRunner
    from obslink.plugins.registry import load_registry

    logger = write_logger_file(base / "qc", records)
    data = logger.path.read_bytes()
    element_map = {field: (element, None) for field, _u, _p, element in logger.kind.columns}
    registry = load_registry()
    without, with_qc = [], []
    for n in range(5):  # alternated, so both see the same machine conditions
        for runner, times in ((QCRunner([]), without),
                              (QCRunner.from_registry(registry, default_settings()), with_qc)):
            (base / f"run{n}-{len(runner.names)}").mkdir()
            times.append(agent_cpu_per_reading(base / f"run{n}-{len(runner.names)}", data,
                                               element_map, runner))
    return min(without) * 1e6, min(with_qc) * 1e6


def bench_durability(base: Path, commits: int) -> dict[str, float]:
    """Wall seconds per one-record commit through the agent's sink, per synchronous level
    (alternated, best of 3)."""
    import threading

    from obslink.agent.outbox import Outbox
    from obslink.agent.runner import OutboxSink
    from obslink.plugins.formats import Decoded
    from obslink.plugins.qc_limits import default_settings
    from obslink.plugins.qc_runner import QCRunner
    from obslink.plugins.registry import load_registry
    from obslink.plugins.sources import ChunkOrigin, SourcePosition
    from obslink.readings import Reading

    registry = load_registry()
    columns = KINDS[0].columns
    best: dict[str, float] = {}
    for n in range(3):
        for level in ("FULL", "NORMAL"):
            outbox = Outbox(base / f"durability-{level}-{n}.db", "BENCH1", level)
            sink = OutboxSink(outbox, 5000, threading.Event(),
                              QCRunner.from_registry(registry, default_settings()))
            started = time.perf_counter()
            for i in range(commits):
                readings = [Reading(i * 60_000_000, element, 10.0, unit, field)
                            for field, unit, _p, element in columns]
                sink.commit(ChunkOrigin("logger", "a.dat", i, i + 1, b""),
                            Decoded(readings, [], 1), SourcePosition(i + 1, "", {}),
                            TOA5Adapter())
            per_commit = (time.perf_counter() - started) / commits
            best[level] = min(best.get(level, per_commit), per_commit)
            outbox.close()
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs")
    args = parser.parse_args()
    records = 3_000 if args.quick else 30_000
    with tempfile.TemporaryDirectory(prefix="obslink-bench-") as tmp:
        base = Path(tmp)
        readings, elapsed = bench_pipeline(base, records)
        pipeline_rate = readings / elapsed
        raw_rate = bench_raw_sqlite(base, 200_000)
        adapter_rates, split_rate = bench_adapters(base, records)
        without_qc, with_qc = bench_qc(base, records)
        durability = bench_durability(base, 200 if args.quick else 2000)
    print(f"agent→collector  {readings} readings in {elapsed:.2f} s = {pipeline_rate:,.0f} "
          f"readings/s; raw SQLite batched insert {raw_rate:,.0f} rows/s; "
          f"ratio {pipeline_rate / raw_rate:.2f}")
    print(f"baseline         csv.reader splitting the same TOA5 rows: {split_rate:,.0f} "
          "cells/s")
    for name, rate in adapter_rates.items():
        print(f"decode {name:<10}{rate:>10,.0f} readings/s on one core; ratio to baseline "
              f"{rate / split_rate:.3f}")
    print(f"agent CPU        {without_qc:.2f} µs per reading with QC off, {with_qc:.2f} µs "
          f"with every QC check: QC adds {100 * (with_qc / without_qc - 1):.1f} % "
          f"(ratio {with_qc / without_qc:.2f}; target <= 1.20)")
    full, normal = durability["FULL"], durability["NORMAL"]
    print(f"outbox commit    one record (7 readings): synchronous FULL {full * 1000:.2f} ms "
          f"({1 / full:,.0f}/s), NORMAL {normal * 1000:.2f} ms ({1 / normal:,.0f}/s); "
          f"ratio FULL/NORMAL {full / normal:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
