"""Protocol v2 beside v1 with real processes: the previous release's agent against this
collector, this agent against the previous release's collector, a collector whose
restored catalog lacks the contexts a station's batches name, and a batch v2 cannot carry
going as v1 beside the others (a real broker throughout)."""

from __future__ import annotations

import io
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from obslink import wire
from obslink.agent.outbox import Outbox
from obslink.readings import Reading, now_us
from tests.conftest import NETWORK, Deployment, wait_until
from tests.test_lanes import HOUR_US, agent_config, commit_batch, drain_to_a_collector

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
# The last commit before protocol v2: the release whose agents and collectors are in the
# field when this one is rolled out.
PREVIOUS_RELEASE = "e3ca2f4b5dffa377a65a1b09b5b01a1f5fbbf46e"
# where each source directory goes in the installed package (pyproject.toml)
PACKAGE_DIRS = {"core": "obslink", "agent": "obslink/agent", "plugins": "obslink/plugins",
                "server": "obslink/server", "cli": "obslink/cli", "demo": "obslink/demo"}


@pytest.fixture(scope="session")
def previous_release(tmp_path_factory) -> dict:
    """The previous release's code, laid out as installed, from this repository's history;
    the environment that runs it instead of this checkout's."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar",
                              PREVIOUS_RELEASE, *PACKAGE_DIRS], capture_output=True)
    assert archive.returncode == 0, (
        f"the previous release {PREVIOUS_RELEASE[:7]} is not in this checkout's history "
        f"(a shallow clone?): {archive.stderr.decode()}; clone without --depth")
    unpacked = tmp_path_factory.mktemp("previous-release")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(unpacked / "src", filter="data")
    package = unpacked / "package"
    for source, target in PACKAGE_DIRS.items():  # the package first, its subpackages in it
        shutil.copytree(unpacked / "src" / source, package / target)
    env = {"PYTHONPATH": str(package)}
    found = subprocess.run([sys.executable, "-c", "import obslink; print(obslink.__file__)"],
                           env={**os.environ, **env}, capture_output=True, text=True,
                           check=True).stdout.strip()
    assert found.startswith(str(package)), f"the previous release did not load: {found}"
    return env


def data_topics(deployment: Deployment) -> set[str]:
    return {topic.split("/")[1] for (topic,) in deployment.catalog.query(
        "SELECT DISTINCT topic FROM batches")}


def write_records(station, deployment: Deployment, count: int, message: str,
                  since: int = 0) -> None:
    """Write ``count`` records and wait until the catalog holds every value written from the
    ``since``-th on and the agent has taken the acks."""
    for _ in range(count):
        station.logger.write_next()
    expected = sum(1 for _t, _element, value, _unit in station.logger.expected[since:]
                   if value is not None)
    wait_until(lambda: deployment.catalog.query(
        "SELECT count(*) FROM observations WHERE station = ? AND value IS NOT NULL",
        station.id)[0][0] == expected, timeout=60, message=message)
    # and the agent has taken the acks, with what they announce (the protocol above all)
    wait_until(lambda: station.unacked_batches() == 0, timeout=60,
               message=f"{station.id}'s agent to take its acks")


def test_an_agent_of_the_previous_release_keeps_working(deployment, previous_release):
    station = deployment.add_station("OLD-AGENT")
    deployment.start_collector()
    agent = deployment._spawn(["agent", "run", str(station.config)], "agent-old",
                              previous_release)
    write_records(station, deployment, 4, "the old agent's records")
    assert data_topics(deployment) == {"v1"}  # it knows nothing of v2, and needs not
    assert deployment.catalog.query("SELECT count(*) FROM refusals")[0][0] == 0
    assert agent.alive()


def test_this_agent_keeps_v1_with_a_collector_of_the_previous_release(tmp_path, broker,
                                                                      previous_release):
    deployment = Deployment(tmp_path, broker)
    station = deployment.add_station("NEW-AGENT", register=False)
    # the previous release makes its catalog and enrols the station, as it would in the field
    subprocess.run([sys.executable, "-c", (
        "import sys\n"
        "from obslink.keys import key_id, load_public_key, public_bytes\n"
        "from obslink.server.catalog import Station, open_catalog\n"
        "catalog = open_catalog(sys.argv[1])\n"
        "public = load_public_key(sys.argv[2])\n"
        "catalog.add_station(Station('NEW-AGENT', sys.argv[3]), public_bytes(public), "
        "key_id(public))\n"), str(deployment.catalog_path), str(station.public_key), NETWORK],
        env={**os.environ, **previous_release}, check=True, timeout=60)
    # the station spoke v2 with a collector before, which was then replaced by one of the
    # previous release: its v2 messages go unanswered, and it falls back to v1
    outbox = Outbox(station.directory / "outbox.db", station.id)
    outbox.set_meta("collector_protocol", "2")
    outbox.close()
    station.config.write_text(station.config.read_text().replace("ack_timeout = 10",
                                                                 "ack_timeout = 1"))
    try:
        deployment.start_collector(env=previous_release)
        agent = deployment.start_agent(station)
        write_records(station, deployment, 4, "the new agent's records")
        assert data_topics(deployment) == {"v1"}
        assert "sending v1 until the collector announces v2" in agent.log()
    finally:
        deployment.stop_all()


def test_a_collector_whose_restored_catalog_lacks_a_context_gets_it_again(deployment):
    station = deployment.add_station("RESTORED")
    deployment.start_collector()
    backup = deployment.base / "backup.db"
    with sqlite3.connect(deployment.catalog_path) as source, sqlite3.connect(backup) as copy:
        source.backup(copy)  # before the station's first batch
    agent = deployment.start_agent(station)
    for _ in range(3):  # the first goes as v1; its ack announces v2
        write_records(station, deployment, 1, "the first records")
    assert "v2" in data_topics(deployment)
    assert "the collector takes protocol v2" in agent.log()
    deployment.collector.stop()
    with sqlite3.connect(backup) as source, \
            sqlite3.connect(deployment.catalog_path) as catalog:
        source.backup(catalog)  # the operator restores the backup
    deployment.start_collector()
    restored_from = len(station.logger.expected)
    for _ in range(2):
        write_records(station, deployment, 1, "the records after the restore", restored_from)
    wait_until(lambda: "sending them along again" in agent.log(), message="the agent told")
    assert deployment.catalog.query(
        "SELECT count(*) FROM refusals WHERE reason = 'unknown-context'")[0][0] >= 1
    assert data_topics(deployment) == {"v2"}
    done = subprocess.run([sys.executable, "-m", "obslink", "catalog", "verify", "--db",
                           str(deployment.catalog_path)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_batch_v2_cannot_carry_goes_as_v1_beside_the_others(tmp_path, broker):
    # a station and subscription group of its own: the broker is the session's
    config = agent_config(tmp_path, broker, station="V2-ODD")
    outbox = Outbox(config.outbox_path, config.station)
    outbox.set_meta("collector_protocol", "2")
    for minute in range(40):
        commit_batch(outbox, now_us() - 30 * HOUR_US + minute * 60_000_000)
    # a batch from an agent that writes a source key v2 does not know (a line number)
    odd = wire.encode_batch(wire.Batch(
        config.station, outbox.epoch, 41, now_us(), [Reading(
            now_us() - 29 * HOUR_US, "air_temperature", 2.5, "degC", "T")], "toa5", "1",
        {"name": "logger", "line": 7}, {"synced": None, "offset_ms": None}, [], 1))
    with outbox.transaction() as conn:
        conn.execute("INSERT INTO batches (seq, created_at, body, readings, first_observed, "
                     "last_observed, source, bytes) VALUES (41, ?, ?, 1, ?, ?, 'logger', ?)",
                     (now_us(), odd, now_us() - 29 * HOUR_US, now_us() - 29 * HOUR_US,
                      len(odd)))
        conn.execute("UPDATE meta SET value = '42' WHERE key = 'next_seq'")
    catalog, collector, _uplink = drain_to_a_collector(tmp_path, broker, config, outbox,
                                                       group="v2-odd")
    roots = dict(catalog.conn.execute(
        "SELECT seq, substr(topic, 1, 10) FROM batches ORDER BY seq").fetchall())
    assert sorted(roots) == list(range(1, 42))  # each once
    assert roots[41] == "obslink/v1"
    assert set(roots[seq] for seq in range(1, 41)) == {"obslink/v2"}
    assert collector.refused == 0
    catalog.close()
