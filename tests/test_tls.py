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

from obslink.demo.broker import Mosquitto
from obslink.server.catalog import open_catalog
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
        open_catalog(deployed.catalog_path).close()
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


def certificates(directory, hosts, valid_days: int = 30, expired: bool = False):
    """A CA and a server certificate for ``hosts`` (written like `collector tls init`, with
    a chosen validity); returns (ca.pem, server.pem, server.key)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    start = now - datetime.timedelta(days=60 if expired else 1)
    end = now - datetime.timedelta(days=1) if expired else now + datetime.timedelta(days=valid_days)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(now + datetime.timedelta(days=365))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    names = [x509.IPAddress(ipaddress.ip_address(h)) if h[0].isdigit() else x509.DNSName(h)
             for h in hosts]
    server = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
              .issuer_name(ca_name).public_key(key.public_key())
              .serial_number(x509.random_serial_number()).not_valid_before(start)
              .not_valid_after(end)
              .add_extension(x509.SubjectAlternativeName(names), critical=False)
              .sign(ca_key, hashes.SHA256()))
    paths = (directory / "ca.pem", directory / "server.pem", directory / "server.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def test_a_failed_connection_says_which_certificate_problem_it_is(tmp_path):
    """What the agent logs and shows in `agent status` when it cannot connect: the reason
    paho does not give, found by trying the connection the same way (real Mosquitto)."""
    from obslink.demo.broker import free_port
    from obslink.mqtt_tcp import explain_connect_failure

    ca, server, key = certificates(tmp_path / "good", ["127.0.0.1"])
    other_ca, _, _ = certificates(tmp_path / "other", ["127.0.0.1"])
    _, old_server, old_key = certificates(tmp_path / "old", ["127.0.0.1"], expired=True)
    old_ca = tmp_path / "old" / "ca.pem"
    with Mosquitto(tmp_path / "b1", tls=(server, key)) as good, \
            Mosquitto(tmp_path / "b2", tls=(old_server, old_key)) as expired, \
            Mosquitto(tmp_path / "b3") as plain:
        assert "accepts TLS connections" in explain_connect_failure(
            "127.0.0.1", good.port, True, str(ca))
        assert "not signed by a CA this gateway trusts (the CA in " in \
            explain_connect_failure("127.0.0.1", good.port, True, str(other_ca))
        assert "not signed by a CA this gateway trusts (the system's CAs)" in \
            explain_connect_failure("127.0.0.1", good.port, True, None)
        assert "not valid for the host name 'localhost'" in explain_connect_failure(
            "localhost", good.port, True, str(ca))
        assert "certificate has expired" in explain_connect_failure(
            "127.0.0.1", expired.port, True, str(old_ca))
        assert "plain MQTT" in explain_connect_failure("127.0.0.1", plain.port, True, str(ca))
    assert "nothing listens on" in explain_connect_failure("127.0.0.1", free_port(), True,
                                                          str(ca))
    assert "does not resolve" in explain_connect_failure("no-such-host.invalid", 8883, True,
                                                        None)


def test_the_agent_logs_and_shows_the_tls_reason(tls_deployment, tmp_path):
    deployment, tls = tls_deployment
    other_ca, _, _ = certificates(tmp_path / "other", ["127.0.0.1"])
    station = deployment.add_station("TLS-2", kind_index=0)
    text = station.config.read_text()
    station.config.write_text(text.replace("[uplink]\n", f'[uplink]\nca_file = "{other_ca}"\n'))
    agent = deployment.start_agent(station)
    station.logger.write_next()
    wait_until(lambda: "not signed by a CA this gateway trusts" in agent.log(), timeout=30,
               message="the TLS reason in the agent's log")
    status = subprocess.run([sys.executable, "-m", "obslink", "agent", "status",
                             str(station.config)], capture_output=True, text=True).stdout
    assert "broker link: unreachable" in status and "set [uplink] ca_file" in status
    assert "cannot reach broker" not in agent.log()  # the old, reasonless line
