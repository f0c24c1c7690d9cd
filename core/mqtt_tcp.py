"""TCP settings for obslink's own MQTT connections."""

from __future__ import annotations

import socket

import paho.mqtt.client as mqtt


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
