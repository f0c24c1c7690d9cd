"""obslink benchmarks: `.venv/bin/python bench/run.py` (add --quick for a short run).

Each figure is printed with a baseline measured in the same run on the same machine, as a
ratio, so results from different machines can be compared:

- agent→collector: readings/s from a logger file through a real agent, Mosquitto and
  collector into the SQLite catalog, against the raw batched SQLite insert rate of the same
  rows into the same table (the floor the catalog sits on).
- TOA5 decoding: readings/s of the adapter against csv.reader merely splitting the same bytes.
"""

from __future__ import annotations

import argparse
import csv
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from obslink.broker import Mosquitto
from obslink.keys import key_id, load_public_key, public_bytes, write_keypair
from obslink.plugins.formats import AdapterContext
from obslink.plugins.toa5 import TOA5Adapter
from obslink.readings import format_utc
from obslink.server.catalog import MIGRATIONS, SQLiteCatalog, Station
from obslink.simulator import KINDS, SimulatedLogger, write_agent_config


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
        catalog = SQLiteCatalog(catalog_path)
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
        for statement in filter(str.strip, sql.split(";")):
            conn.execute(statement)
    conn.execute("PRAGMA foreign_keys=OFF")
    batch = [(1, "BENCH1", format_utc(i * 60_000_000, fixed=True), "air_temperature",
              20.5, "degC", "AirTC_Avg", None, 9, None) for i in range(5000)]
    started = time.perf_counter()
    for _ in range(rows // len(batch)):
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO observations VALUES (?,?,?,?,?,?,?,?,?,?)", batch)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return (rows // len(batch)) * len(batch) / elapsed


def bench_toa5(base: Path, records: int) -> tuple[float, float]:
    logger = write_logger_file(base / "decode", records)
    data = logger.path.read_bytes()
    started = time.perf_counter()
    decoded = TOA5Adapter(AdapterContext("B", 480)).decode(data, start=0, final=True)
    adapter_rate = len(decoded.readings) / (time.perf_counter() - started)
    started = time.perf_counter()
    cells = sum(len(row) - 2 for row in csv.reader(data.decode().splitlines()[4:]))
    split_rate = cells / (time.perf_counter() - started)
    return adapter_rate, split_rate


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
        adapter_rate, split_rate = bench_toa5(base, records)
    print(f"agent→collector  {readings} readings in {elapsed:.2f} s = {pipeline_rate:,.0f} "
          f"readings/s; raw SQLite batched insert {raw_rate:,.0f} rows/s; "
          f"ratio {pipeline_rate / raw_rate:.2f}")
    print(f"TOA5 decoding    {adapter_rate:,.0f} readings/s; csv.reader split only "
          f"{split_rate:,.0f} cells/s; ratio {adapter_rate / split_rate:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
