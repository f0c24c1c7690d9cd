"""A closed broker from `obslink collector broker-config`, run by a real Mosquitto: TLS only,
an account per station, and an ACL that keeps each station to its own topics."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from obslink import wire
from obslink.demo.broker import find_mosquitto, free_port
from obslink.server.catalog import open_catalog
from obslink.server.catalog.broker_passwords import COLLECTOR_ACCOUNT
from tests.conftest import NETWORK, Deployment, wait_until

pytestmark = pytest.mark.e2e


def obslink(*args, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "obslink", *map(str, args)],
                          capture_output=True, text=True)
    assert done.returncode == 0 or not check, done.stderr
    return done


@dataclass
class ClosedBroker:
    port: int
    directory: Path
    tls: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtts://127.0.0.1:{self.port}"

    def configure_and_start(self, catalog: Path, reload: bool = False) -> None:
        """broker-config, then Mosquitto started exactly as it says (as root here: it drops
        to the account the configuration names), with no edit of what it wrote; or, with
        ``reload``, the running one sent SIGHUP as it says."""
        written = obslink("collector", "broker-config", "--db", catalog, "--dir",
                          self.directory, "--tls-dir", self.tls, "--port", self.port,
                          "--address", "127.0.0.1").stdout
        if reload:
            assert "send a running one SIGHUP to reload" in written
            self.process.send_signal(signal.SIGHUP)
            return
        command = shlex.split(re.search(r"start it with `([^`]+)`", written).group(1))
        assert command[0] == "mosquitto"
        self.process = subprocess.Popen([find_mosquitto(), *command[1:]],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def listening() -> bool:
            assert self.process.poll() is None, self.process.stderr.read().decode()
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", self.port)) == 0
        wait_until(listening, timeout=10, message="the closed broker")

    def stop(self) -> None:
        if self.process:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def reachable_dir():
    """A directory the broker's own account can enter (pytest's tmp_path is in a folder
    only its owner may enter, as /root is): as an operator would pick /etc/obslink/broker."""
    folder = Path(tempfile.mkdtemp(prefix="obslink-broker-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def closed(tmp_path, reachable_dir):
    obslink("collector", "tls", "init", "--dir", tmp_path / "tls", "--host", "127.0.0.1")
    broker = ClosedBroker(free_port(), reachable_dir / "broker", tmp_path / "tls")
    deployment = Deployment(tmp_path / "deployment", broker)
    open_catalog(deployment.catalog_path).close()
    yield deployment, broker
    deployment.stop_all()
    broker.stop()


class Client:
    """A TLS client of the closed broker under some account (or none)."""

    def __init__(self, broker: ClosedBroker, username: str | None, password: str | None):
        self.messages: list[mqtt.MQTTMessage] = []
        self.connected, self.refused = threading.Event(), threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.tls_set(ca_certs=str(broker.tls / "ca.pem"))
        if username:
            self.client.username_pw_set(username, password)
        self.client.on_connect = lambda c, u, f, reason, p: (
            self.refused if reason.is_failure else self.connected).set()
        self.client.on_message = lambda c, u, message: self.messages.append(message)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        wait_until(lambda: self.connected.is_set() or self.refused.is_set(), timeout=10,
                   message="an answer to CONNECT")

    def subscribe(self, topic: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *args: done.set()
        self.client.subscribe(topic, qos=1)
        assert done.wait(5)

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(timeout=5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_stations_are_kept_to_their_own_topics(closed):
    deployment, broker = closed
    a, b = (deployment.add_station(name) for name in ("ACL-A", "ACL-B"))
    catalog = open_catalog(deployment.catalog_path)
    passwords = {s.id: catalog.new_broker_password(s.id).password
                 for s in (a, b)}
    catalog.close()
    broker.configure_and_start(deployment.catalog_path)
    collector_password = (broker.directory / "collector.password").read_text().strip()

    assert Client(broker, None, None).refused.is_set()  # no anonymous clients
    assert Client(broker, a.id, "wrong").refused.is_set()
    collector = Client(broker, COLLECTOR_ACCOUNT, collector_password)
    station_a, station_b = (Client(broker, s.id, passwords[s.id]) for s in (a, b))
    try:
        assert collector.connected.is_set() and station_a.connected.is_set()
        collector.subscribe(f"{wire.TOPIC_ROOT}/+/+/data")
        station_a.publish(wire.data_topic(NETWORK, b.id), b"forged by A")  # B's topic
        station_a.publish(wire.data_topic(NETWORK, a.id), b"A's own")
        wait_until(lambda: len(collector.messages) >= 1, message="A's own message")
        station_a.subscribe(wire.ack_topic(NETWORK, b.id))  # B's acks
        station_b.subscribe(wire.ack_topic(NETWORK, b.id))
        collector.publish(wire.ack_topic(NETWORK, b.id), b"ack for B")
        wait_until(lambda: station_b.messages, message="B's ack")
        time.sleep(0.5)  # anything A could get would have arrived by now
        assert [m.payload for m in collector.messages] == [b"A's own"]
        assert station_a.messages == []
    finally:
        for client in (collector, station_a, station_b):
            client.close()


def test_agent_and_collector_deliver_through_the_closed_broker(closed):
    deployment, broker = closed
    station = deployment.add_station("ACL-C", kind_index=0)
    password_file = station.directory / "broker.password"
    obslink("collector", "station", "credentials", station.id, "--db", deployment.catalog_path,
            "--out", password_file)
    assert oct(password_file.stat().st_mode & 0o777) == "0o600"
    text = station.config.read_text()
    station.config.write_text(text.replace("[uplink]\n", (
        f'[uplink]\nca_file = "{broker.tls / "ca.pem"}"\nusername = "{station.id}"\n'
        f'password_file = "{password_file}"\n')))
    broker.configure_and_start(deployment.catalog_path)
    deployment.start_collector(options=(
        "--ca-file", str(broker.tls / "ca.pem"), "--username", COLLECTOR_ACCOUNT,
        "--password-file", str(broker.directory / "collector.password")))
    deployment.start_agent(station)
    for _ in range(2):
        station.logger.write_next()
    wait_until(lambda: deployment.catalog.count("observations") == 14, message="2 records")


@pytest.mark.skipif(os.geteuid() != 0, reason="only root makes Mosquitto change accounts")
def test_a_directory_the_brokers_account_cannot_enter_is_refused_at_once(tmp_path):
    obslink("collector", "tls", "init", "--dir", tmp_path / "tls", "--host", "127.0.0.1")
    open_catalog(tmp_path / "catalog.db").close()
    done = subprocess.run([sys.executable, "-m", "obslink", "collector", "broker-config",
                           "--db", str(tmp_path / "catalog.db"), "--dir",
                           str(tmp_path / "broker"), "--tls-dir", str(tmp_path / "tls")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "the broker runs as mosquitto, which cannot enter" in \
        done.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="only root writes files for another account")
def test_secrets_root_writes_beside_a_services_catalog_stay_readable_by_its_account(
        tmp_path, reachable_dir):
    """The operator runs broker-config (and perhaps station add) with sudo, the collector
    runs as its own account, which owns the catalog: the collector's password and the
    secret broker passwords derive from must be that account's."""
    service = "nobody"
    state = reachable_dir / "state"
    state.mkdir()
    catalog_path = state / "catalog.db"
    open_catalog(catalog_path).close()
    shutil.chown(state, service, "nogroup")
    shutil.chown(catalog_path, service, "nogroup")
    key = tmp_path / "station.key"
    obslink("agent", "keygen", "--private", key)
    obslink("collector", "station", "add", "OWN-A", "--public-key", key.with_suffix(".pub"),
            "--db", catalog_path)
    obslink("collector", "tls", "init", "--dir", tmp_path / "tls", "--host", "127.0.0.1")
    obslink("collector", "broker-config", "--db", catalog_path, "--dir",
            reachable_dir / "broker", "--tls-dir", tmp_path / "tls")
    for secret in (state / "broker-accounts.key", reachable_dir / "broker" /
                   "collector.password"):
        assert (secret.owner(), secret.stat().st_mode & 0o777) == (service, 0o600), secret
        read = subprocess.run(["cat", str(secret)], user=service, capture_output=True)
        assert read.returncode == 0 and read.stdout, read.stderr


def enrolled_config(deployment, broker, station_id: str, https: str) -> tuple[Path, str]:
    """A station registered by the operator, enrolled by its gateway over HTTPS, and its
    agent.toml made of the lines `agent enrol` printed plus the logger's source."""
    token = obslink("collector", "station", "add", station_id, "--enrol", "--db",
                    deployment.catalog_path, "--network", NETWORK).stdout.splitlines()[1].strip()
    station = deployment.add_station(station_id, kind_index=0, register=False)
    enrolled = obslink("agent", "enrol", "--collector", https, "--token", token, "--private",
                       station.private_key, "--ca-file", broker.tls / "ca.pem", "--save",
                       station.directory / "enrolment.json").stdout
    snippet = enrolled.split("in agent.toml:\n", 1)[1].split("\nnote:")[0]
    assert f'ca_file = "{(broker.tls / "ca.pem").resolve()}"' in snippet
    sources = station.config.read_text()[station.config.read_text().index("[sources."):]
    station.config.write_text(textwrap.dedent(snippet) + "\nreconnect_max = 2\n"
                              + "ack_timeout = 5\n" + sources)
    return station, enrolled


def test_enrolment_and_the_closed_broker_stay_consistent(closed, tmp_path):
    """A station added before `broker-config` enrols and delivers with the lines `agent
    enrol` printed. One enrolled after it is refused by the broker until the operator runs
    `broker-config` again and reloads the broker, as its enrolment answer said: meanwhile
    its agent keeps reading, buffers, retries and says what to do."""
    deployment, broker = closed
    port = free_port()
    deployment._spawn(["collector", "http", "--db", str(deployment.catalog_path), "--listen",
                       f"127.0.0.1:{port}", "--broker-url", broker.url, "--tls-dir",
                       str(broker.tls)], "https")
    https = f"https://127.0.0.1:{port}"
    wait_until(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, timeout=20,
               message="the HTTPS API")
    open_catalog(deployment.catalog_path).close()
    token = obslink("collector", "station", "add", "CLOSED-1", "--enrol", "--db",
                    deployment.catalog_path, "--network", NETWORK)
    assert "run `obslink collector broker-config`" not in token.stdout  # none written yet
    broker.configure_and_start(deployment.catalog_path)
    deployment.start_collector(options=(
        "--ca-file", str(broker.tls / "ca.pem"), "--username", COLLECTOR_ACCOUNT,
        "--password-file", str(broker.directory / "collector.password")))
    # the first station: registered before broker-config (its token from above is replaced)
    obslink("collector", "token", "revoke", "CLOSED-1", "--db", deployment.catalog_path)
    first_token = obslink("collector", "token", "issue", "CLOSED-1", "--db",
                          deployment.catalog_path).stdout.splitlines()[1].strip()
    first = deployment.add_station("CLOSED-1", kind_index=0, register=False)
    enrolled = obslink("agent", "enrol", "--collector", https, "--token", first_token,
                       "--private", first.private_key, "--ca-file", broker.tls / "ca.pem",
                       "--save", first.directory / "enrolment.json").stdout
    assert "note:" not in enrolled  # the broker knows its account already
    snippet = enrolled.split("in agent.toml:\n", 1)[1]
    text = first.config.read_text()
    first.config.write_text(textwrap.dedent(snippet) + "\n" + text[text.index("[sources."):])
    assert obslink("agent", "check", first.config).returncode == 0
    deployment.start_agent(first)
    first.logger.write_next()
    wait_until(lambda: deployment.catalog.count("observations") == 7, message="CLOSED-1")

    # the second station: enrolled after the broker's configuration was written
    second, enrolled = enrolled_config(deployment, broker, "CLOSED-2", https)
    assert "note: the broker does not know account CLOSED-2 yet: run `obslink collector " \
        "broker-config` and reload the broker" in enrolled
    agent = deployment.start_agent(second)

    def status():
        done = obslink("agent", "status", second.config, "--json", check=False)
        return json.loads(done.stdout) if done.returncode == 0 else None
    for _ in range(3):
        second.logger.write_next()
    refused = wait_until(lambda: (s := status()) and s["link"] and
                         s["link"]["state"] == "refused" and s["unacked_readings"] == 21 and s,
                         timeout=30, message="the refusal, with the readings buffered")
    assert "Not authorized" in refused["link"]["detail"]
    assert "`obslink collector broker-config` and reloads the broker" in \
        refused["link"]["detail"]
    assert agent.alive() and "broker link: refused" in obslink(
        "agent", "status", second.config).stdout
    second.logger.write_next()  # the sources go on
    wait_until(lambda: (s := status()) and s["unacked_readings"] == 28, message="buffering")

    broker.configure_and_start(deployment.catalog_path, reload=True)
    wait_until(lambda: deployment.catalog.query(
        "SELECT count(*) FROM observations WHERE station = 'CLOSED-2'")[0][0] == 28,
        timeout=30, message="CLOSED-2's buffered readings after the reload")
    assert status()["link"]["state"] == "connected"
    assert "Traceback" not in agent.log()
