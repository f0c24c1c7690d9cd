"""TLS between stations, broker and collector: a real Mosquitto with a certificate from
`obslink collector tls init`; plaintext is refused, agent and collector deliver over TLS."""

from __future__ import annotations

import ssl
import subprocess
import sys
import threading

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from obslink.broker import Mosquitto
from obslink.server.catalog import SQLiteCatalog
from tests.conftest import Deployment, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def tls_deployment(tmp_path):
    made = subprocess.run([sys.executable, "-m", "obslink", "collector", "tls", "init", "--dir",
                           str(tmp_path / "tls"), "--host", "127.0.0.1", "--host", "localhost"],
                          capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    tls = tmp_path / "tls"
    with Mosquitto(tmp_path / "broker", tls=(tls / "server.pem", tls / "server.key")) as broker:
        deployed = Deployment(tmp_path / "deployment", broker)
        SQLiteCatalog(deployed.catalog_path).close()
        yield deployed, tls
        deployed.stop_all()


def connects(port: int, ca_file=None, use_tls: bool = False) -> bool:
    connected = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if use_tls:
        client.tls_set(ca_certs=ca_file)
    client.on_connect = lambda c, u, flags, reason, props: (
        connected.set() if not reason.is_failure else None)
    try:
        client.connect("127.0.0.1", port, keepalive=10)
    except (OSError, ssl.SSLError):
        return False
    client.loop_start()
    try:
        return connected.wait(3)
    finally:
        client.loop_stop()
        client.disconnect()


def test_plaintext_and_unknown_certificates_are_refused(tls_deployment):
    deployment, tls = tls_deployment
    port = deployment.broker.port
    assert deployment.broker.url.startswith("mqtts://")
    assert not connects(port)  # plaintext MQTT on the TLS listener
    assert not connects(port, use_tls=True)  # the system CAs do not know our CA
    assert connects(port, ca_file=str(tls / "ca.pem"), use_tls=True)


def test_agent_and_collector_deliver_over_tls(tls_deployment):
    deployment, tls = tls_deployment
    station = deployment.add_station("TLS-1", kind_index=0)
    text = station.config.read_text()
    station.config.write_text(text.replace("[uplink]\n",
                                           f'[uplink]\nca_file = "{tls / "ca.pem"}"\n'))
    deployment.start_collector(options=("--ca-file", str(tls / "ca.pem")))
    deployment.start_agent(station)
    for _ in range(2):
        station.logger.write_next()
    wait_until(lambda: deployment.catalog.count("observations") == 14, message="2 records")


def test_tls_mistakes_are_explained(tmp_path):
    first = subprocess.run([sys.executable, "-m", "obslink", "collector", "tls", "init",
                            "--dir", str(tmp_path), "--host", "broker.example"],
                           capture_output=True, text=True)
    assert first.returncode == 0 and "ca.pem" in first.stdout
    assert oct((tmp_path / "ca.key").stat().st_mode & 0o777) == "0o600"
    again = subprocess.run([sys.executable, "-m", "obslink", "collector", "tls", "init",
                            "--dir", str(tmp_path), "--host", "broker.example"],
                           capture_output=True, text=True)
    assert again.returncode == 2 and "--force" in again.stderr
    no_host = subprocess.run([sys.executable, "-m", "obslink", "collector", "tls", "init",
                              "--dir", str(tmp_path / "x")], capture_output=True, text=True)
    assert no_host.returncode == 2 and "--host" in no_host.stderr
