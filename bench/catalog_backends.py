"""Collector workers on SQLite and on PostgreSQL, against raw inserts of the same rows, in
the same run: `.venv/bin/python bench/catalog_backends.py [--quick] [--stations N]
[--hours H]`.

A fleet's backlog (one-minute records of the demo's weather station, 7 readings each, in
bundles of 32 batches as agents send a backlog) is built once. Then, for each backend, a
new catalog takes it from 1 and from 2 collector worker processes: each worker is the
collector's own code (verify, centre QC, group commit on a second thread) handed its share
of the messages as a shared subscription would hand them (message by message, in turn),
without a broker, so that what is measured is the workers and the catalog. Timed from the
moment every worker holds its messages until the last has committed its last group.

Baselines, in the same run: the observation rows the SQLite catalog ended up with,
inserted raw into a table of the same columns (SQLite: executemany in one transaction,
synchronous=FULL; PostgreSQL: COPY), rows/s. PostgreSQL runs durable (fsync on, as SQLite
commits with synchronous=FULL), on this machine, started by the bench.

Printed: readings/s of each, each against its raw insert, PostgreSQL against SQLite (issue
22: one worker on PostgreSQL ≥ 70 % of one on SQLite) and two workers against one (≥ 1.6×
where the machine has the cores: the cores are printed); and the bytes a reading takes in
each catalog (all it stored, indexes included, over the readings: the capacity table of
docs/scaling.md).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, str(Path(__file__).parent))
from backlog_drain import (COLUMNS as RECORD, MINUTE_US, NETWORK, build_backlogs,  # noqa: E402
                           enrol_stations, station_id)

from obslink import wire  # noqa: E402
from obslink.agent.outbox import Outbox  # noqa: E402
from obslink.demo.postgres import PostgresServer  # noqa: E402
from obslink.keys import key_id  # noqa: E402
from obslink.readings import now_us  # noqa: E402
from obslink.server.catalog import open_catalog  # noqa: E402

BUNDLE = 32
COLUMNS = "batch_id, series, observed_us, value, source_flag, qc, qc_ran, qc_failed"


def signed_messages(outboxes: Path, keys: list[Ed25519PrivateKey]) -> list[tuple[str, bytes]]:
    """Every station's backlog as signed bundles, interleaved across stations as a broker
    delivers them."""
    per_station = []
    for index, key in enumerate(keys):
        outbox = Outbox(outboxes / f"{station_id(index)}.db", station_id(index), "OFF")
        bodies = [body for _seq, body in outbox.unsent(1_000_000, set())]
        outbox.close()
        topic = wire.data_topic(NETWORK, station_id(index))
        per_station.append([(topic, wire.sign_bundle(bodies[i:i + BUNDLE], topic, key,
                                                     key_id(key.public_key())))
                            for i in range(0, len(bodies), BUNDLE)])
    return [message for turn in zip(*per_station) for message in turn]


def worker(location: str, messages: list[tuple[str, bytes]], ready, go, done) -> None:
    from obslink.server.collector import Collector

    collector = Collector(open_catalog(location), "127.0.0.1", 1)  # never connects
    for topic, payload in messages:
        collector._arrive(topic, payload, False, now_us())
    ready.put(os.getpid())
    go.wait()
    while group := collector._take_group(timeout=0):
        collector.process(group)
    collector.flush()
    done.put((collector.committed, collector.refused))


def run_workers(location: str, messages: list, workers: int) -> float:
    """Seconds from the start signal until every worker has committed its share."""
    # fork: the workers inherit the messages instead of unpickling them (and this file
    # need not be importable by name, as spawn would need)
    context = multiprocessing.get_context("fork")
    ready, done, go = context.Queue(), context.Queue(), context.Event()
    processes = [context.Process(target=worker, args=(location, messages[n::workers], ready,
                                                      go, done)) for n in range(workers)]
    for process in processes:
        process.start()
    try:
        _take(ready, processes, "take their messages")
        started = time.perf_counter()
        go.set()
        results = _take(done, processes, "commit")
        elapsed = time.perf_counter() - started
    finally:
        for process in processes:
            process.join(60)
            if process.is_alive():
                process.kill()
    refused = sum(result[1] for result in results)
    if refused:
        raise SystemExit(f"the workers refused {refused} messages: see their log lines")
    return elapsed


def _take(answers, processes, what: str) -> list:
    """One answer from each worker; a worker that dies first ends the bench, saying so."""
    taken = []
    while len(taken) < len(processes):
        try:
            taken.append(answers.get(timeout=1))
        except queue.Empty:
            dead = [process for process in processes if process.exitcode not in (None, 0)]
            if dead:
                raise SystemExit(f"a collector worker died (exit {dead[0].exitcode}) before "
                                 f"it could {what}; its error is above") from None
    return taken


def raw_sqlite_seconds(path: Path, rows: list[tuple]) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE raw (id INTEGER PRIMARY KEY, batch_id INTEGER, series "
                 "INTEGER, observed_us INTEGER, value REAL, source_flag TEXT, qc INTEGER, "
                 "qc_ran INTEGER, qc_failed INTEGER)")
    conn.execute("CREATE INDEX raw_series_time ON raw (series, observed_us)")
    started = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany(f"INSERT INTO raw ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?)", rows)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def raw_postgres_seconds(url: str, rows: list[tuple]) -> float:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE raw (id bigint GENERATED BY DEFAULT AS IDENTITY, batch_id "
                     "bigint, series bigint, observed_us bigint, value double precision, "
                     "source_flag text, qc bigint, qc_ran bigint, qc_failed bigint)")
        conn.execute("CREATE INDEX raw_series_time ON raw (series, observed_us)")
        started = time.perf_counter()
        with conn.transaction(), conn.cursor() as cursor:
            with cursor.copy(f"COPY raw ({COLUMNS}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        return time.perf_counter() - started


def catalog_bytes(location: str) -> tuple[int, int]:
    """What the catalog takes on disk, and of it what the observation rows with their
    indexes take: the SQLite file with its WAL (checkpointed; the rows' share by dbstat),
    or the PostgreSQL schema's tables with their indexes and TOAST."""
    if "://" not in location:
        with sqlite3.connect(location) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            rows = conn.execute("SELECT sum(pgsize) FROM dbstat WHERE name = "
                                "'observation_values' OR name IN (SELECT name FROM "
                                "sqlite_master WHERE tbl_name = 'observation_values' AND "
                                "type = 'index')").fetchone()[0]
        return sum(path.stat().st_size for path in Path(location).parent.glob(
            Path(location).name + "*")), rows
    import psycopg

    with psycopg.connect(location) as conn:
        return conn.execute(
            "SELECT sum(pg_total_relation_size(c.oid)), sum(pg_total_relation_size(c.oid)) "
            "FILTER (WHERE c.relname LIKE 'observation_values%') FROM pg_class c JOIN "
            "pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
            "AND c.relkind = 'r'").fetchone()


def new_catalog(location: str, keys: list[Ed25519PrivateKey]) -> None:
    catalog = open_catalog(location)
    enrol_stations(catalog, keys)
    catalog.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stations", type=int, default=200)
    parser.add_argument("--hours", type=int, default=12, help="backlog per station")
    parser.add_argument("--quick", action="store_true", help="50 stations, 2 hours")
    args = parser.parse_args()
    if args.quick:
        args.stations, args.hours = 50, 2
    with tempfile.TemporaryDirectory(prefix="obslink-backends-") as tmp:
        base = Path(tmp)
        keys = [Ed25519PrivateKey.generate() for _ in range(args.stations)]
        (base / "backlog").mkdir()
        newest = now_us() // MINUTE_US * MINUTE_US
        print(f"building {args.stations} outboxes with {args.hours} h of one-minute records "
              "each …", flush=True)
        readings = build_backlogs((base / "backlog", list(range(args.stations)), args.hours,
                                   newest))
        messages = signed_messages(base / "backlog", keys)
        print(f"  {readings:,} readings in {len(messages):,} messages of up to {BUNDLE} "
              f"batches; {os.cpu_count()} cores", flush=True)
        rates: dict[tuple[str, int], float] = {}
        sizes: dict[str, int] = {}
        with PostgresServer(base / "postgres", durable=True) as postgres:
            for workers in (1, 2):
                for backend in ("sqlite", "postgresql"):
                    if backend == "sqlite":
                        location = str(base / f"catalog-{workers}.db")
                    else:
                        location = postgres.schema_url(f"workers_{workers}")
                    new_catalog(location, keys)
                    seconds = run_workers(location, messages, workers)
                    catalog = open_catalog(location)
                    stored = catalog.stats()["observations"]
                    catalog.close()
                    if stored != readings:
                        raise SystemExit(f"{backend}, {workers} worker(s): {stored:,} readings "
                                         f"stored of {readings:,}")
                    rates[(backend, workers)] = readings / seconds
                    if workers == 1:
                        sizes[backend] = catalog_bytes(location)
                    print(f"{backend:<10} {workers} worker(s): {readings / seconds:>9,.0f} "
                          f"readings/s ({seconds:.1f} s)", flush=True)
            with sqlite3.connect(base / "catalog-1.db") as conn:
                rows = conn.execute(f"SELECT {COLUMNS} FROM observation_values ORDER BY id"
                                    ).fetchall()
            raw_sqlite = len(rows) / raw_sqlite_seconds(base / "raw.db", rows)
            raw_postgres = len(rows) / raw_postgres_seconds(postgres.url, rows)
        print(f"raw SQLite executemany, same rows:   {raw_sqlite:>9,.0f} rows/s")
        print(f"raw PostgreSQL COPY, same rows:      {raw_postgres:>9,.0f} rows/s")
        batches = readings // len(RECORD)
        for backend, (size, rows) in sizes.items():
            print(f"{backend:<10} catalog: {size / 2**20:,.0f} MiB, {size / readings:.0f} bytes "
                  f"a reading (indexes, batches and log included): the observation rows "
                  f"with their indexes {rows / readings:.0f} bytes a reading, the rest "
                  f"(batches with their signed bodies, log leaves, bundles) "
                  f"{(size - rows) / batches:.0f} bytes a batch of {len(RECORD)}")
        for backend, raw in (("sqlite", raw_sqlite), ("postgresql", raw_postgres)):
            print(f"{backend:<10} 1 worker / raw insert = {rates[(backend, 1)] / raw:.2f}; "
                  f"2 workers / 1 worker = {rates[(backend, 2)] / rates[(backend, 1)]:.2f}×")
        print(f"PostgreSQL / SQLite, 1 worker = "
              f"{rates[('postgresql', 1)] / rates[('sqlite', 1)]:.2f} (target ≥ 0.70); "
              f"2 workers = {rates[('postgresql', 2)] / rates[('sqlite', 2)]:.2f}; "
              f"cores: {os.cpu_count()} (2 workers ≥ 1.6× one where the cores allow)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
