"""Enrolment: a one-time token binds a gateway's key to its station (real HTTP server,
collector, broker and agent processes)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest

from obslink.demo.broker import free_port
from obslink.keys import key_id, load_private_key
from tests.conftest import wait_until

pytestmark = pytest.mark.e2e


def obslink(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "obslink", *args], capture_output=True,
                          text=True, check=check)


def issue_token(deployment, station: str, valid_for: str = "1h") -> str:
    """`station add --enrol` for a new station, `token issue` for a registered one."""
    db = str(deployment.catalog_path)
    registered = obslink("collector", "station", "show", station, "--db", db,
                         check=False).returncode == 0
    out = obslink(*(["collector", "token", "issue", station, "--valid", valid_for]
                    if registered else ["collector", "station", "add", station, "--enrol",
                                        valid_for, "--network", "test"]), "--db", db).stdout
    assert "works once" in out
    return out.splitlines()[1].strip()


@pytest.fixture
def http_api(deployment):
    return start_http_api(deployment)


def start_http_api(deployment) -> str:
    port = free_port()
    deployment._spawn(["collector", "http", *deployment.catalog_options(), "--listen",
                       f"127.0.0.1:{port}", "--broker-url", deployment.broker.url], "http")

    def accepting() -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0
    wait_until(accepting, timeout=20, message="the HTTP API")
    return f"http://127.0.0.1:{port}"


def enrol(url: str, token: str, private) -> subprocess.CompletedProcess:
    return obslink("agent", "enrol", "--collector", url, "--token", token, "--private",
                   str(private), "--save", str(private.with_name("enrolment.json")),
                   check=False)


def test_an_enrolled_station_delivers_with_its_key(deployment_on_each_backend):
    deployment = deployment_on_each_backend
    http_api = start_http_api(deployment)
    station = deployment.add_station("ENROL-1", register=False)
    token = issue_token(deployment, station.id)
    done = enrol(http_api, token, station.private_key)
    assert done.returncode == 0, done.stderr
    kid = key_id(load_private_key(station.private_key).public_key())
    answer = json.loads(station.private_key.with_name("enrolment.json").read_text())
    assert (answer["station"], answer["key_id"], answer["broker"]) == \
        ("ENROL-1", kid, deployment.broker.url)
    assert len(bytes.fromhex(answer["collector_public_key"])) == 32
    assert len(bytes.fromhex(answer["collector_encryption_key"])) == 32
    assert f'encrypt_to = "{answer["collector_encryption_key"]}"' in done.stdout
    assert 'id = "ENROL-1"' in done.stdout

    deployment.start_collector()
    deployment.start_agent(station)
    station.logger.write_next()
    wait_until(lambda: deployment.catalog.count("observations") == 7, message="a record")
    assert deployment.catalog.query("SELECT DISTINCT key_id FROM batches") == [(kid,)]


def test_tokens_work_once_expire_and_must_be_real(deployment, http_api, tmp_path):
    station = deployment.add_station("ENROL-2", register=False)
    token = issue_token(deployment, station.id)
    assert enrol(http_api, token, station.private_key).returncode == 0
    again = enrol(http_api, token, tmp_path / "other.key")
    assert again.returncode == 2 and "already used" in again.stderr
    assert "HTTP 409" in again.stderr

    short = issue_token(deployment, station.id, "1s")
    time.sleep(1.5)
    expired = enrol(http_api, short, tmp_path / "late.key")
    assert expired.returncode == 2 and "expired" in expired.stderr

    wrong = enrol(http_api, "not-a-token", tmp_path / "wrong.key")
    assert wrong.returncode == 2 and "not valid" in wrong.stderr
    # a key already bound to one station cannot enrol for another
    theirs = enrol(http_api, issue_token(deployment, "ENROL-3"), station.private_key)
    assert theirs.returncode == 2 and "already registered to station ENROL-2" in theirs.stderr
    keys = json.loads(obslink("collector", "keys", "list", "--db",
                              str(deployment.catalog_path), "--json").stdout)
    assert [k["station"] for k in keys] == ["ENROL-2"]  # refusals bound nothing


def test_enrolment_mistakes_are_explained(deployment, tmp_path):
    db = str(deployment.catalog_path)
    neither = obslink("collector", "station", "add", "X-1", "--db", db, check=False)
    assert neither.returncode == 2 and "--enrol" in neither.stderr
    bad_age = obslink("collector", "station", "add", "X-1", "--db", db, "--enrol", "soon",
                      check=False)
    assert bad_age.returncode == 2 and "90m, 24h or 7d" in bad_age.stderr
    unreachable = enrol(f"http://127.0.0.1:{free_port()}", "t", tmp_path / "s.key")
    assert unreachable.returncode == 2 and "cannot reach the collector" in unreachable.stderr


def test_enrolment_over_https(deployment, tmp_path):
    tls = tmp_path / "tls"
    obslink("collector", "tls", "init", "--dir", str(tls), "--host", "127.0.0.1")
    port = free_port()
    deployment._spawn(["collector", "http", "--db", str(deployment.catalog_path), "--listen",
                       f"127.0.0.1:{port}", "--broker-url", deployment.broker.url,
                       "--tls-dir", str(tls)], "https")

    def accepting() -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0
    wait_until(accepting, timeout=20, message="the HTTPS API")
    station = deployment.add_station("ENROL-TLS", register=False)
    token = issue_token(deployment, station.id)
    unverified = enrol(f"https://127.0.0.1:{port}", token, station.private_key)
    assert unverified.returncode == 2 and "cannot reach the collector" in unverified.stderr
    done = obslink("agent", "enrol", "--collector", f"https://127.0.0.1:{port}", "--token",
                   token, "--private", str(station.private_key), "--ca-file",
                   str(tls / "ca.pem"), "--save", str(tmp_path / "enrolment.json"),
                   check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "enrolment.json").read_text())["station"] == "ENROL-TLS"


def test_a_revoked_key_is_refused_at_enrolment_and_every_attempt_is_kept(deployment, http_api):
    station = deployment.add_station("ENROL-4", register=False)
    db = str(deployment.catalog_path)
    assert enrol(http_api, issue_token(deployment, station.id), station.private_key
                 ).returncode == 0
    kid = key_id(load_private_key(station.private_key).public_key())
    obslink("collector", "keys", "revoke", kid, "--db", db)
    token = issue_token(deployment, station.id)
    refused = enrol(http_api, token, station.private_key)
    assert refused.returncode == 2 and "HTTP 409" in refused.stderr
    assert f"key {kid} was revoked at" in refused.stderr
    assert "the token was not used" in refused.stderr
    tokens = json.loads(obslink("collector", "token", "list", "--station", station.id,
                                "--db", db, "--json").stdout)
    assert tokens[0]["status"] == "live"
    attempts = json.loads(obslink("collector", "enrolments", "--db", db, "--json").stdout)
    assert [(a["station"], a["outcome"], a["reason"], a["client"]) for a in attempts] == [
        ("ENROL-4", "refused", "key-revoked", "127.0.0.1"),
        ("ENROL-4", "granted", None, "127.0.0.1")]
    text = obslink("collector", "enrolments", "--db", db).stdout
    assert "refused" in text and "granted" in text
