"""A closed broker from `obslink collector broker-config`, run by a real Mosquitto: TLS only,
an account per station, and an ACL that keeps each station to its own topics."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from obslink import wire
from obslink.broker import find_mosquitto, free_port
from obslink.server.catalog import SQLiteCatalog
from obslink.server.station_records import COLLECTOR_ACCOUNT, StationRecords
from tests.conftest import NETWORK, Deployment, wait_until

pytestmark = pytest.mark.e2e


def obslink(*args) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "obslink", *map(str, args)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
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

    def configure_and_start(self, catalog: Path) -> None:
        obslink("collector", "broker-config", "--db", catalog, "--dir", self.directory,
                "--tls-dir", self.tls, "--port", self.port, "--address", "127.0.0.1")
        config = self.directory / "mosquitto.conf"
        if os.geteuid() == 0:  # keep root, or user mosquitto could not read our files
            config.write_text(config.read_text() + "user root\n")
        self.process = subprocess.Popen([find_mosquitto(), "-c", str(config)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def listening() -> bool:
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", self.port)) == 0
        wait_until(listening, timeout=10, message="the closed broker")

    def stop(self) -> None:
        if self.process:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def closed(tmp_path):
    obslink("collector", "tls", "init", "--dir", tmp_path / "tls", "--host", "127.0.0.1")
    broker = ClosedBroker(free_port(), tmp_path / "broker", tmp_path / "tls")
    deployment = Deployment(tmp_path / "deployment", broker)
    SQLiteCatalog(deployment.catalog_path).close()
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
    catalog = SQLiteCatalog(deployment.catalog_path)
    passwords = {s.id: StationRecords(catalog).new_broker_password(s.id).password
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
