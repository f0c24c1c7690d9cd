"""Datasets as catalog records: made with their station under the catalog's defaults, kept
through renames, edited by operators (CLI), and made for the stations of a catalog from
before datasets existed."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from obslink.errors import ConfigError
from obslink.server.catalog import Station, open_catalog
from obslink.server.catalog.datasets import wcmp2
from obslink.server.catalog.sqlite_schema import MIGRATIONS
from obslink.sqlite_store import apply_migrations


def obslink(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "obslink", *args], capture_output=True,
                          text=True, timeout=60)


def test_a_station_gets_its_dataset_under_the_defaults_and_keeps_it_through_renames(
        catalog_location):
    catalog = open_catalog(catalog_location)
    try:
        catalog.add_station(Station("S1", "net", "Hill top", 30.5, 114.25, 60), None, None)
        catalog.update_catalog_settings(default_classification="restricted",
                                        default_licence="WMO Resolution 1", centre_id="cn-cma")
        catalog.add_station(Station("S2", "net"), None, None)
        first, second = catalog.datasets()
        assert (first["id"], first["title"], first["classification"], first["licence"]) == \
            ("obslink:S1/surface", "Surface observations of Hill top", "public", "")
        assert (second["classification"], second["licence"]) == ("restricted",
                                                                 "WMO Resolution 1")
        assert first["time_start"] is None and first["elements"] == []
        catalog.update("S1", name="Hill top (moved)")
        assert catalog.dataset("obslink:S1/surface")["title"] == "Surface observations of Hill top"
        record = wcmp2(catalog.dataset("obslink:S1/surface"), "cn-cma")
        assert record["id"] == "urn:wmo:md:cn-cma:S1.surface"
        assert record["geometry"] == {"type": "Point", "coordinates": [114.25, 30.5]}
        assert record["time"] is None
        with pytest.raises(ConfigError, match="not one of public, internal"):
            catalog.update_dataset("obslink:S1/surface", classification="secret")
        with pytest.raises(ConfigError, match="centre_id"):
            catalog.update_catalog_settings(centre_id="a b")
    finally:
        catalog.close()


def test_operators_list_show_and_update_datasets(catalog_location):
    db = str(catalog_location)
    catalog = open_catalog(db)
    catalog.add_station(Station("S1", "net", "Hill top"), None, None)
    catalog.close()
    assert "obslink:S1/surface  public  no data yet" in obslink(
        "catalog", "datasets", "list", "--db", db).stdout
    done = obslink("catalog", "datasets", "update", "obslink:S1/surface", "--db", db,
                   "--classification", "internal", "--title", "Hill top AWS")
    assert done.returncode == 0 and "Hill top AWS (internal)" in done.stdout, done.stderr
    shown = obslink("catalog", "datasets", "show", "obslink:S1/surface", "--db", db).stdout
    assert "classification  internal" in shown and "title           Hill top AWS" in shown
    unknown = obslink("catalog", "datasets", "show", "obslink:S9/surface", "--db", db)
    assert unknown.returncode != 0 and "catalog datasets list" in unknown.stderr
    bad = obslink("catalog", "datasets", "update", "obslink:S1/surface", "--db", db,
                  "--classification", "secret")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_stations_of_an_older_catalog_get_their_datasets(tmp_path):
    path = tmp_path / "catalog.db"
    conn = sqlite3.connect(path, isolation_level=None)
    before = next(i for i, (name, _) in enumerate(MIGRATIONS) if name.startswith("datasets"))
    apply_migrations(conn, MIGRATIONS[:before])  # every migration before datasets
    conn.execute("INSERT INTO stations (id, name, network, created_at) VALUES "
                 "('OLD', NULL, 'net', '2025-01-01T00:00:00.000000Z')")
    conn.close()
    catalog = open_catalog(path)
    try:
        [dataset] = catalog.datasets()
        assert (dataset["id"], dataset["title"], dataset["created_at"]) == (
            "obslink:OLD/surface", "Surface observations of OLD", "2025-01-01T00:00:00.000000Z")
    finally:
        catalog.close()
