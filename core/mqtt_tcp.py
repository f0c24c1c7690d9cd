"""Connection settings for obslink's own MQTT connections: broker URLs, TLS, TCP."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt

from obslink.errors import ConfigError


def send_without_delay(client: mqtt.Client) -> None:
    """Turn off Nagle's algorithm on the client's connection (call it once connected).

    A collector writes a PUBACK and then an ack; with Nagle on, the ack waits for the
    broker's delayed TCP ACK of the PUBACK, which costs 40 ms a round trip on Linux. MQTT
    packets are whole messages: nothing is gained by holding them back."""
    sock = client.socket()
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (AttributeError, OSError):  # not a TCP socket (e.g. a websocket wrapper)
        pass


def parse_broker_url(url: str) -> tuple[str, int, bool]:
    """``mqtt://host[:1883]`` or ``mqtts://host[:8883]`` (TLS) -> (host, port, tls)."""
    parts = urlsplit(str(url))
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"{url!r} is not a broker URL like mqtt://host:1883 or "
                         "mqtts://host:8883 (TLS)")
    tls = parts.scheme == "mqtts"
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError:
        raise ValueError(f"{url!r} has an invalid port") from None
    return parts.hostname, port, tls


def use_tls(client, ca_file: str | None) -> None:
    """Encrypt the connection and check the broker's certificate against ``ca_file`` (the
    network's CA, e.g. from `obslink collector tls init`) or, without one, the system's."""
    client.tls_set(ca_certs=ca_file)


def use_account(client, username: str | None, password_file) -> None:
    """Log in with a broker account; the password is read from its file (never a setting)."""
    if username is not None:
        client.username_pw_set(username, read_password(password_file))


def read_password(path) -> str:
    try:
        return open(path, encoding="utf-8").read().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the broker password file {path}: {exc}") from None
