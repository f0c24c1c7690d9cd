"""The benchmarks still run against the current schema (a tiny size, nothing timed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def load_bench(name: str):
    path = Path(__file__).parent.parent / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_raw_sqlite_baseline_inserts_into_the_catalogs_own_tables(tmp_path):
    run = load_bench("run")
    assert run.bench_raw_sqlite(tmp_path, 5000) > 0
