"""The benchmarks still run against the current schema (a tiny size, nothing timed)."""

from __future__ import annotations

import importlib.util
import sqlite3
import sys
from pathlib import Path


def load_bench(name: str):
    path = Path(__file__).parent.parent / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_raw_sqlite_baseline_inserts_into_the_catalogs_own_tables(tmp_path):
    run = load_bench("run")
    assert run.bench_raw_sqlite(tmp_path, 5000) > 0


def test_the_drain_benchs_collector_alone_baseline_stores_every_backlog_reading(
        tmp_path, catalog_location):
    drain = load_bench("backlog_drain")
    keys = [drain.Ed25519PrivateKey.generate() for _ in range(3)]
    (tmp_path / "backlog").mkdir()
    newest = drain.now_us() // drain.MINUTE_US * drain.MINUTE_US
    readings = drain.build_backlogs((tmp_path / "backlog", [0, 1, 2], 1, newest))
    rate, stored = drain.collector_capacity(tmp_path / "backlog", keys, 2, 16, tmp_path,
                                            str(catalog_location))
    assert readings == 3 * 60 * len(drain.COLUMNS)
    assert stored == 2 * 60 * len(drain.COLUMNS) and rate > 0  # the first two stations'


def test_the_log_cost_bench_stores_every_reading_with_and_without_the_log(tmp_path):
    bench = load_bench("log_cost")
    keys = [bench.Ed25519PrivateKey.generate() for _ in range(2)]
    payloads = bench.messages(2, 3, 2, keys)
    for catalog_class in (bench.SQLiteCatalog, bench.CatalogWithoutLog):
        assert bench.ingest_rate(catalog_class, tmp_path, keys, payloads) > 0
    counts = []
    for path in tmp_path.glob("*.db"):  # read as they are (opening one adds missing leaves)
        with sqlite3.connect(path) as db:
            counts.append(db.execute("SELECT (SELECT count(*) FROM observation_values), "
                                     "(SELECT count(*) FROM log_leaves)").fetchone())
    assert sorted(counts) == [(2 * 3 * len(bench.ELEMENTS), 0),
                              (2 * 3 * len(bench.ELEMENTS), 2 * 3)]


def test_the_query_bench_builds_a_catalog_its_queries_read(tmp_path):
    bench = load_bench("catalog_queries")
    bench.build(tmp_path / "catalog.db", 2, 1, 1)
    catalog = bench.open_catalog(tmp_path / "catalog.db")
    try:
        assert catalog.stats()["observations"] == 3 * 1440 * len(bench.ELEMENTS)
        assert len(catalog.datasets()) == 3
    finally:
        catalog.close()


def test_the_monitoring_bench_counts_a_day_and_sees_a_station_fall_silent(tmp_path,
                                                                         monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(Path(__file__).parent.parent / "bench"))
    bench = load_bench("monitor_cost")
    bench.ingest_cost(tmp_path, 2, 3, 1)
    path = tmp_path / "catalog.db"
    bench.build(path, 2, 1, 1)
    bench.day_completeness(path, 2)  # asserts the counts agree with counting the rows
    bench.silence(path, interval_s=1)
    bench.silence(path, interval_s=1)  # again on the same catalog, as --dir reuses it
    printed = capsys.readouterr().out
    assert printed.count("silence to alarm") == 2 and "completeness 1.000" in printed


def test_the_product_bench_moves_a_small_product_both_ways(tmp_path):
    from obslink.demo.broker import Mosquitto

    bench = load_bench("product_transfer")
    products = [bench.make_product(tmp_path, 1.5, number) for number in range(2)]
    with Mosquitto(tmp_path / "broker") as broker:
        assert bench.raw_seconds(broker, products, tmp_path / "pieces") > 0
        seconds, agent_rss, collector_rss, cpu = bench.obslink_seconds(
            tmp_path / "obslink", broker, products, "product_in_flight = 2")
    assert seconds > 0 and agent_rss[1] >= agent_rss[0] > 0 and collector_rss[1] > 0
    assert cpu["agent"] > 0 and cpu["collector"] > 0


def test_the_backends_bench_stores_every_reading_from_two_workers(tmp_path, catalog_location):
    bench = load_bench("catalog_backends")
    keys = [bench.Ed25519PrivateKey.generate() for _ in range(3)]
    (tmp_path / "backlog").mkdir()
    newest = bench.now_us() // bench.MINUTE_US * bench.MINUTE_US
    readings = bench.build_backlogs((tmp_path / "backlog", [0, 1, 2], 1, newest))
    messages = bench.signed_messages(tmp_path / "backlog", keys)
    bench.new_catalog(str(catalog_location), keys)
    assert bench.run_workers(str(catalog_location), messages, 2) > 0
    catalog = bench.open_catalog(catalog_location)
    try:
        assert catalog.stats()["observations"] == readings
        rows = catalog.conn.execute(f"SELECT {bench.COLUMNS} FROM observation_values"
                                    ).fetchall()
    finally:
        catalog.close()
    if isinstance(catalog_location, str):
        assert bench.raw_postgres_seconds(catalog_location, rows) > 0
    else:
        assert bench.raw_sqlite_seconds(tmp_path / "raw.db", rows) > 0
