"""Known-bad readings travel from a logger file to the catalog with the expected QC flags,
whether QC ran at the edge or (for a sender that ran none) at the centre, and the step
check's history survives a SIGKILL of the agent and of the collector."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from obslink.demo.simulator import directory_source_toml
from tests.conftest import wait_until

pytestmark = pytest.mark.e2e

HEADER = ('"TOA5","{station}","CR1000X","1","OS","CPU:a.CR1X","1","Min1"\n'
          '"TIMESTAMP","RECORD","AirTC","AirTC_Max","RH","WS","WD","Rain"\n'
          '"TS","RN","Deg C","Deg C","%","meters/second","degrees","mm"\n'
          '"","","Smp","Max","Smp","Avg","Smp","Tot"\n')
BEFORE = ('"2026-07-01 08:00:00",1,20.0,21.0,50,0.0,0,0.0\n'
          '"2026-07-01 08:01:00",2,20.5,21.0,50,3.0,90,0.0\n')
AFTER = ('"2026-07-01 08:02:00",3,70.0,21.0,105,0.0,180,-0.2\n'
         '"2026-07-01 08:03:00",4,21.0,22.0,"NAN",2.0,200,0.0\n')
ELEMENTS = """\
AirTC = "air_temperature"
AirTC_Max = "air_temperature_max"
RH = "relative_humidity"
WS = "wind_speed"
WD = "wind_direction"
Rain = "precipitation_amount"
"""
GOOD = 0, ()
EXPECTED = {
    ("08:00", "air_temperature"): GOOD, ("08:00", "air_temperature_max"): GOOD,
    ("08:00", "relative_humidity"): GOOD, ("08:00", "wind_speed"): GOOD,
    ("08:00", "wind_direction"): GOOD, ("08:00", "precipitation_amount"): GOOD,
    ("08:01", "air_temperature"): GOOD, ("08:01", "air_temperature_max"): GOOD,
    ("08:01", "relative_humidity"): GOOD, ("08:01", "wind_speed"): GOOD,
    ("08:01", "wind_direction"): GOOD, ("08:01", "precipitation_amount"): GOOD,
    # 70 degC: beyond the physical limit, a 49.5 degC step, above the hour's maximum
    ("08:02", "air_temperature"): (2, ("consistency", "range", "step")),
    ("08:02", "air_temperature_max"): (1, ("consistency",)),
    ("08:02", "relative_humidity"): (2, ("range", "step")),
    # a calm with a direction
    ("08:02", "wind_speed"): (1, ("consistency",)),
    ("08:02", "wind_direction"): (1, ("consistency",)),
    ("08:02", "precipitation_amount"): (2, ("consistency", "range")),
    # back from the spike: a step again
    ("08:03", "air_temperature"): (1, ("step",)),
    ("08:03", "air_temperature_max"): GOOD,
    # NAN: missing; the source_flags check says why
    ("08:03", "relative_humidity"): (8, ("source_flags",)),
    ("08:03", "wind_speed"): GOOD, ("08:03", "wind_direction"): GOOD,
    ("08:03", "precipitation_amount"): GOOD,
}


def flags_in_catalog(deployment, station):
    names = dict(deployment.catalog.query("SELECT bit, name FROM qc_checks"))
    rows = deployment.catalog.query(
        "SELECT observed_at, element, qc, qc_failed FROM observations WHERE station = ?",
        station)
    return {(t[11:16], element):
            (qc, tuple(sorted(n for b, n in names.items() if failed >> b & 1)))
            for t, element, qc, failed in rows}


def add_station(deployment, station, qc_toml=""):
    logger = deployment.base / station / "logger"
    logger.mkdir(parents=True)
    config = deployment.add_station_with_sources(
        station, "UTC", qc_toml + directory_source_toml("toa5", logger, 0.1, ELEMENTS))
    data = logger / "Min1.dat"
    data.write_text(HEADER.format(station=station) + BEFORE)
    return config, data


def test_bad_readings_arrive_flagged_from_the_edge_and_from_the_centre(
        deployment_on_each_backend):
    deployment = deployment_on_each_backend
    edge_config, edge_file = add_station(deployment, "QC-EDGE")
    # an agent that runs no QC stands for an older agent or another sender
    centre_config, centre_file = add_station(deployment, "QC-CENTRE", "[qc]\nchecks = []\n")
    collector = deployment.start_collector()
    edge_agent = deployment.run_agent(edge_config)
    deployment.run_agent(centre_config)
    wait_until(lambda: deployment.catalog.count("observations") == 24, message="2 records each")

    # history of the step check must survive: the agent (edge) and the collector (centre)
    # die without warning before the spike arrives
    edge_agent.kill()
    collector.kill()
    for path in (edge_file, centre_file):
        with open(path, "a") as out:
            out.write(AFTER)
    deployment.start_collector()
    deployment.run_agent(edge_config)
    wait_until(lambda: deployment.catalog.count("observations") == 48, message="4 records each")

    assert flags_in_catalog(deployment, "QC-EDGE") == EXPECTED
    assert flags_in_catalog(deployment, "QC-CENTRE") == EXPECTED
    origins = deployment.catalog.query("SELECT DISTINCT station, qc_origin FROM batches")
    assert sorted(origins) == [("QC-CENTRE", "centre"), ("QC-EDGE", "edge")]
    values = deployment.catalog.query(
        "SELECT value FROM observations WHERE station = 'QC-EDGE' AND element = "
        "'air_temperature' ORDER BY observed_at")
    assert [v for v, in values] == [20.0, 20.5, 70.0, 21.0]  # flagged, never changed

    report = subprocess.run(
        [sys.executable, "-m", "obslink", "catalog", "qc", "--db", deployment.catalog_path,
         "--station", "QC-CENTRE", "--json"], capture_output=True, text=True, check=True)
    summary = json.loads(report.stdout)
    assert summary["observations"] == 24 and summary["coverage_percent"] == 100.0
    assert summary["flags"] == {"good": 16, "suspect": 4, "erroneous": 3, "missing": 1}
    assert {name: c["flagged"] for name, c in summary["checks"].items()} == {
        "consistency": 5, "persistence": 0, "range": 3, "source_flags": 1, "step": 3}
    assert summary["checks"]["range"]["ran"] == 23  # every reading with a value
    assert summary["qc_ran_at"] == {"centre": summary["qc_ran_at"]["centre"]}
    later = subprocess.run(
        [sys.executable, "-m", "obslink", "catalog", "qc", "--db", deployment.catalog_path,
         "--station", "QC-EDGE", "--since", "2026-07-01T08:02Z"],
        capture_output=True, text=True, check=True)
    assert "12 observations" in later.stdout and "erroneous" in later.stdout
