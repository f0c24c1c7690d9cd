"""Catalog queries through the HTTP API against raw SQL on the same catalog, in the same run:
`.venv/bin/python bench/catalog_queries.py [--quick] [--dir DIR] [--db postgresql]`.

Builds (or reuses, with --dir) a catalog of 1,000 stations × one week of one-minute records
of 3 elements (30 million readings) plus one station with a year of them, committed
through the catalog's own ingest path, then starts `obslink collector http` on it and
measures, each against the raw SQL query that reads the same rows from the same file:
- "one station, one day, all elements" (JSON, until the whole answer is received): p50
  and p95;
- "one element, all stations, one hour" (JSON, every page): p50 and p95;
- "one station, one year" streamed as CSV: rows/s, against iterating with sqlite3 both
  the same rows with what the CSV carries (the batch's identity, series, time, value, QC,
  flag) and the bare observation rows (id, time, value, QC, element).
Targets (issue 18): station-day p95 ≤ 50 ms; streaming ≥ 50 % of the raw row rate.

The API is measured as deployed (a token, an audit row per request). Then each query goes
to it and to the same API without its access layer (bench/open_api.py), taking turns
request by request, and the access layer's cost is printed as the ratio of the two
(issue 23: ≤ 10 %).

`--db postgresql` builds the catalog in a PostgreSQL the bench starts (durable, on this
machine; built anew each run) and measures the same queries there, the raw ones through
psycopg on the same database (issue 22).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from obslink import wire
from obslink.demo.broker import free_port
from obslink.demo.postgres import PostgresServer, collector_file_options
from obslink.readings import Reading, format_utc
from obslink.server.catalog import AcceptedBatch, Station, open_catalog

T0 = 1_798_761_600_000_000  # 2027-01-01T00:00:00Z
MINUTE, DAY = 60_000_000, 86_400_000_000
ELEMENTS = (("air_temperature", "degC", "T"), ("relative_humidity", "%", "RH"),
            ("air_pressure", "hPa", "P"))
RECORDS_PER_BATCH = 60  # an hour of one-minute records


def station_id(index: int) -> str:
    return f"0-20000-0-{10000 + index}"


def hourly_batches(station: str, days: int, rng: random.Random):
    """The station's records, an hour to a batch, as the collector would take them."""
    for hour in range(days * 24):
        start = T0 + hour * 60 * MINUTE
        readings = [Reading(start + minute * MINUTE, element, round(rng.uniform(0, 1000), 1),
                            unit, field, None, 0, None, 0, 0)
                    for minute in range(RECORDS_PER_BATCH)
                    for element, unit, field in ELEMENTS]
        body = wire.encode_batch(wire.Batch(station, "e1", hour + 1, start, readings, "bench",
                                            "1"))
        yield AcceptedBatch(wire.decode_batch_columns(body),
                            wire.data_topic("bench", station), "kid", bytes(64), body, start)


def build(location: Path | str, stations: int, days: int, year_days: int) -> None:
    catalog = open_catalog(location)
    rng = random.Random(1)
    started = time.perf_counter()
    everyone = [(station_id(i), days) for i in range(stations)] + [("YEAR", year_days)]
    for number, (station, station_days) in enumerate(everyone, 1):
        catalog.add_station(Station(station, "bench", station, 20 + number % 20,
                                    100 + number % 30, 60), None, None)
        group = []
        for item in hourly_batches(station, station_days, rng):
            group.append(item)
            if len(group) == 24:
                catalog.commit(group)
                group = []
        if group:
            catalog.commit(group)
        if number % 50 == 0 or number == len(everyone):
            readings = catalog.stats()["observations"]
            print(f"  built {number}/{len(everyone)} stations, {readings:,} readings, "
                  f"{readings / (time.perf_counter() - started):,.0f} readings/s", flush=True)
    catalog.close()


def serve(location: Path | str, directory: Path) -> tuple[str, subprocess.Popen]:
    port = free_port()
    files = collector_file_options(location, directory)
    process = subprocess.Popen([sys.executable, "-m", "obslink", "collector", "http", "--db",
                                str(location), "--listen", f"127.0.0.1:{port}", "--broker-url",
                                "mqtt://127.0.0.1:1883", *files], stdout=subprocess.DEVNULL)
    return wait_listening(port, process)


def bench_token(location: Path | str) -> str:
    """A token of an administrator cleared for everything (made again on a reused
    catalog)."""
    from obslink.errors import ConfigError
    from obslink.server.access.tokens import issue_token

    catalog = open_catalog(location)
    try:
        try:
            catalog.create_account("bench", "administrator", "not-released", "service")
        except ConfigError:  # --dir: made by an earlier run
            pass
        return issue_token(catalog, "bench", (), 86400, "bench/catalog_queries.py")[1]
    finally:
        catalog.close()


def serve_open(location: Path | str) -> tuple[str, subprocess.Popen]:
    """The same API without its access layer (bench/open_api.py): the baseline."""
    port = free_port()
    process = subprocess.Popen([sys.executable, str(Path(__file__).with_name("open_api.py")),
                                str(location), f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL)
    return wait_listening(port, process)


def wait_listening(port: int, process: subprocess.Popen) -> tuple[str, subprocess.Popen]:
    for _ in range(200):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return f"http://127.0.0.1:{port}", process
        time.sleep(0.1)
    process.kill()
    raise SystemExit("the HTTP API did not start")


def timings(run, repeat: int) -> list[float]:
    run()  # warm: caches, connections
    found = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        found.append(time.perf_counter() - started)
    return found


def show(label: str, api: list[float], raw: list[float]) -> None:
    (p50, p95), (r50, r95) = percentiles(api), percentiles(raw)
    print(f"{label}\n  API  p50 {p50 * 1000:7.1f} ms  p95 {p95 * 1000:7.1f} ms\n"
          f"  SQL  p50 {r50 * 1000:7.1f} ms  p95 {r95 * 1000:7.1f} ms   API / SQL (p50) = "
          f"{p50 / r50:.1f}", flush=True)


RAW = ("SELECT v.id, v.observed_us, v.value, v.qc, s.element FROM observation_values v "
       "JOIN series s ON s.id = v.series WHERE {where} ORDER BY v.series, v.observed_us")


def rows_in(page: bytes) -> int:
    """Observations in a JSON page, counted as received (the latency measured is the
    API's; parsing a megabyte of JSON is the client's own time)."""
    return page.count(b'{"id": ')


def next_link(page: bytes) -> str | None:
    found = re.search(rb'"next": (null|"([^"]*)")', page[-2000:])
    return found.group(2).decode() if found and found.group(2) else None


SAME_CONTENT = (
    "SELECT v.id, b.epoch, b.seq, b.first_row, v.observed_us, s.station, s.element, s.unit, "
    "v.value, v.qc, v.source_flag, s.source_field, s.period_s FROM observation_values v "
    "JOIN series s ON s.id = v.series JOIN batches b ON b.id = v.batch_id "
    "WHERE s.station = ? ORDER BY v.series, v.observed_us")


class RawSQL:
    """The baseline's own connection to the catalog's database: sqlite3 on the file, or
    psycopg on the PostgreSQL database (the same ``?`` statements)."""

    def __init__(self, location: Path | str) -> None:
        self.location = location
        if isinstance(location, Path):
            self.conn = sqlite3.connect(f"file:{location}?mode=ro", uri=True)
        else:
            import psycopg

            self.conn = psycopg.connect(location, autocommit=True)

    def execute(self, sql: str, params=()):
        if isinstance(self.location, Path):
            return self.conn.execute(sql, params)
        from obslink.server.catalog.postgres_connection import translate

        return self.conn.execute(translate(sql), params)

    def size_gib(self) -> float:
        if isinstance(self.location, Path):
            return os.path.getsize(self.location) / 2**30
        return self.execute("SELECT pg_database_size(current_database())").fetchone()[0] / 2**30

    def close(self) -> None:
        self.conn.close()


def sqlite_catalog(directory: Path, args) -> Path:
    """The SQLite catalog in ``directory``, built if it is not there yet."""
    path = directory / f"catalog-{args.stations}x{args.days}d-{args.year_days}d.db"
    if not path.exists():
        print(f"building {path}: {args.stations} stations × {args.days} days + one of "
              f"{args.year_days} days, {len(ELEMENTS)} elements a minute", flush=True)
        build(path.with_suffix(".partial"), args.stations, args.days, args.year_days)
        for suffix in ("", "-wal", "-shm"):
            partial = Path(f"{path.with_suffix('.partial')}{suffix}")
            if partial.exists():
                partial.rename(f"{path}{suffix}")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stations", type=int, default=1000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--year-days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--dir", type=Path, default=None,
                        help="keep the catalog here and reuse it on the next run")
    parser.add_argument("--quick", action="store_true",
                        help="100 stations, 2 days, a 30-day station, 10 repeats")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite",
                        help="the catalog's backend (postgresql: a server the bench starts, "
                        "the catalog built anew)")
    args = parser.parse_args()
    if args.quick:
        args.stations, args.days, args.year_days, args.repeat = 100, 2, 30, 10
    directory = args.dir or Path(tempfile.mkdtemp(prefix="obslink-queries-"))
    directory.mkdir(parents=True, exist_ok=True)
    if args.db == "sqlite":
        return measure(sqlite_catalog(directory, args), directory, args)
    with PostgresServer(directory / "postgres", durable=True) as postgres:
        print(f"building a PostgreSQL catalog: {args.stations} stations × {args.days} days + "
              f"one of {args.year_days} days, {len(ELEMENTS)} elements a minute", flush=True)
        build(postgres.url, args.stations, args.days, args.year_days)
        return measure(postgres.url, directory, args)


def measure(location: Path | str, directory: Path, args) -> int:
    raw = RawSQL(location)
    if not isinstance(location, Path):
        raw.execute("ANALYZE")  # as autovacuum would have by then: the planner's statistics
    readings = raw.execute("SELECT count(*) FROM observation_values").fetchone()[0]
    print(f"catalog ({args.db}): {readings:,} readings, {raw.size_gib():.1f} GiB")
    audited, audited_process = serve(location, directory)
    bare, bare_process = serve_open(location)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {bench_token(location)}"
    try:
        queries(ApiCalls(audited, session, args), raw, args)
        access_cost(ApiCalls(audited, session, args), ApiCalls(bare, requests.Session(), args),
                    args)
    finally:
        for process in (audited_process, bare_process):
            process.send_signal(signal.SIGTERM)
            process.wait(10)
        raw.close()
    return 0


class ApiCalls:
    """The three queries through the API at ``url``, each checking what it received."""

    def __init__(self, url: str, session: requests.Session, args) -> None:
        self.url, self.session, self.args = url, session, args
        self.day = (format_utc(T0 + DAY), format_utc(T0 + 2 * DAY - 1))
        self.hour = (format_utc(T0 + DAY + 12 * 3600 * 10**6),
                     format_utc(T0 + DAY + 13 * 3600 * 10**6 - 1))
        self.expected_hour = 60 * (args.stations + 1)
        self.year_rows = args.year_days * 1440 * len(ELEMENTS)

    def station_day(self) -> None:
        answer = self.session.get(f"{self.url}/v1/observations", params={
            "station": station_id(self.args.stations // 2),
            "datetime": f"{self.day[0]}/{self.day[1]}", "limit": 10000})
        assert answer.status_code == 200 and rows_in(answer.content) == \
            1440 * len(ELEMENTS), answer.text[:200]

    def element_hour(self) -> None:
        rows, link = 0, f"{self.url}/v1/observations"
        params = {"element": "air_temperature", "datetime": f"{self.hour[0]}/{self.hour[1]}",
                  "limit": 10000}
        while link:
            answer = self.session.get(link, params=params).content
            rows += rows_in(answer)
            link, params = next_link(answer), None
        assert rows == self.expected_hour, rows

    def stream(self) -> float:
        """The year station as CSV: rows/s."""
        started = time.perf_counter()
        count = -1  # the header line
        with self.session.get(f"{self.url}/v1/observations",
                              params={"station": "YEAR", "f": "csv"}, stream=True) as answer:
            for chunk in answer.iter_content(chunk_size=1 << 16):
                count += chunk.count(b"\n")
        assert count == self.year_rows, count
        return count / (time.perf_counter() - started)


def queries(api: ApiCalls, raw, args) -> None:
    """Each query through the API (as deployed: a token, an audit row a request) beside
    the raw SQL that reads the same rows."""
    station = station_id(args.stations // 2)

    def sql_station_day():
        rows = raw.execute(RAW.format(where="s.station = ? AND v.observed_us BETWEEN ? "
                                      "AND ?"), (station, T0 + DAY, T0 + 2 * DAY - 1))
        assert len(rows.fetchall()) == 1440 * len(ELEMENTS)
    show("one station, one day, all elements (4,320 rows, JSON)",
         timings(api.station_day, args.repeat), timings(sql_station_day, args.repeat))

    def sql_element_hour():
        rows = raw.execute(RAW.format(where="v.series IN (SELECT id FROM series WHERE "
                                      "element = ?) AND v.observed_us BETWEEN ? AND ?"),
                           ("air_temperature", T0 + DAY + 12 * 3600 * 10**6,
                            T0 + DAY + 13 * 3600 * 10**6 - 1))
        assert len(rows.fetchall()) == api.expected_hour
    show(f"one element, all stations, one hour ({api.expected_hour:,} rows, JSON pages)",
         timings(api.element_hour, max(5, args.repeat // 4)),
         timings(sql_element_hour, max(5, args.repeat // 4)))

    best_api, best_raw, best_same = 0.0, 0.0, 0.0
    for _ in range(3):  # alternate, best of 3 each
        best_api = max(best_api, api.stream())
        started = time.perf_counter()
        count = sum(1 for _ in raw.execute(RAW.format(where="s.station = ?"), ("YEAR",)))
        assert count == api.year_rows
        best_raw = max(best_raw, count / (time.perf_counter() - started))
        started = time.perf_counter()
        count = sum(1 for _ in raw.execute(SAME_CONTENT, ("YEAR",)))
        assert count == api.year_rows
        best_same = max(best_same, count / (time.perf_counter() - started))
    driver = "sqlite3 " if args.db == "sqlite" else "psycopg "
    print(f"one station, one year as CSV ({api.year_rows:,} rows)\n"
          f"  API stream                 {best_api:12,.0f} rows/s\n"
          f"  {driver}, what the CSV has {best_same:12,.0f} rows/s   API / raw = "
          f"{best_api / best_same:.2f}\n"
          f"  {driver}, bare rows        {best_raw:12,.0f} rows/s   API / raw = "
          f"{best_api / best_raw:.2f}", flush=True)


def access_cost(audited: ApiCalls, bare: ApiCalls, args) -> None:
    """The access layer's cost (issue 23: ≤ 10 %): each query through the API as deployed
    and through the same API without its access layer, taking turns request by request
    (the machine's speed drifts between minutes)."""
    print("the access layer's cost: with accounts and audit / without (bench/open_api.py), "
          "taking turns; target ≤ 1.10", flush=True)
    # more turns than the queries above: the cost is a few per cent, the noise as large
    for label, repeat, calls in (("station-day ", max(60, 4 * args.repeat), "station_day"),
                                 ("element-hour", max(30, 2 * args.repeat), "element_hour")):
        with_, without = [], []
        for times, api in ((with_, audited), (without, bare)):
            getattr(api, calls)()  # warm
        for _ in range(repeat):
            for times, api in ((with_, audited), (without, bare)):
                started = time.perf_counter()
                getattr(api, calls)()
                times.append(time.perf_counter() - started)
        (p50, p95), (bare50, bare95) = percentiles(with_), percentiles(without)
        print(f"  {label}  p50 {p50 * 1000:6.1f} / {bare50 * 1000:6.1f} ms = "
              f"{p50 / bare50:.2f}   p95 {p95 * 1000:6.1f} / {bare95 * 1000:6.1f} ms = "
              f"{p95 / bare95:.2f}", flush=True)
    rates = [(audited.stream(), bare.stream()) for _ in range(5)]
    best, best_bare = max(rate for rate, _ in rates), max(rate for _, rate in rates)
    print(f"  CSV stream    {best:,.0f} / {best_bare:,.0f} rows/s: time a row "
          f"{best_bare / best:.2f}", flush=True)


def percentiles(times: list[float]) -> tuple[float, float]:
    return statistics.median(times), sorted(times)[int(len(times) * 0.95) - 1]


if __name__ == "__main__":
    sys.exit(main())
