"""The collector's MQTT connection, in a process of its own.

paho's network thread runs Python for every packet: a message in and its PUBACK out, an ack
out and its PUBACK in. Inside the collector's process that thread held the interpreter lock
a fifth of the time and made the thread that verifies and writes batches wait for it a
quarter of the time (py-spy, 1,000 stations draining 6 h of backlog). In a process of its
own it runs on the machine's other core. The collector gets each message through a pipe
(one read, nothing parsed) and hands its acks back the same way.

A message is acknowledged to the broker (PUBACK) when it arrives, as before; what makes
delivery safe is the collector's own ack after the catalog commit, which agents wait for.
The link ends when the collector's end of the pipe closes, a crash included.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from dataclasses import dataclass

import msgpack
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from obslink import wire
from obslink.logs import configure_logging
from obslink.mqtt_tcp import send_without_delay, use_account, use_tls
from obslink.readings import now_us

log = logging.getLogger(__name__)

SESSION_EXPIRY_SECONDS = 24 * 3600  # batches wait at the broker while the collector restarts
# what the link tells the collector: a message, or that the connection came up or went down
MESSAGE, CONNECTED, DISCONNECTED = 0, 1, 2


@dataclass(frozen=True)
class LinkSettings:
    host: str
    port: int
    client_id: str
    subscriptions: tuple[str, ...]
    tls: bool = False
    ca_file: str | None = None
    username: str | None = None
    password_file: str | None = None
    log_level: int = logging.INFO
    log_format: str = "text"  # the collector's --log-format


class MqttLink:
    """The collector's side: starts the link process, receives what it forwards, and
    passes acks to it."""

    def __init__(self, settings: LinkSettings) -> None:
        context = multiprocessing.get_context("spawn")  # nothing of the catalog is copied
        self._events, events_out = context.Pipe(duplex=False)
        acks_in, self._acks = context.Pipe(duplex=False)
        self.process = context.Process(target=run_link, name="obslink-mqtt-link",
                                       args=(settings, events_out, acks_in), daemon=True)
        self.process.start()
        events_out.close()  # the child holds the only writing end: its exit reads as EOF
        acks_in.close()
        self._send_lock = threading.Lock()  # acks come from the committing thread and others

    def receive(self) -> tuple:
        """The next event: (MESSAGE, topic, payload, live, received_at), (CONNECTED,) or
        (DISCONNECTED, reason). Raises EOFError when the link process has ended."""
        return tuple(msgpack.unpackb(self._events.recv_bytes()))

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """Publish at QoS 1 (a lost ack costs a redelivery, never data); ``retain`` keeps
        it on the broker for later subscribers (alarms)."""
        frame = msgpack.packb((topic, payload, retain))
        with self._send_lock:
            self._acks.send_bytes(frame)

    def close(self, timeout: float = 10) -> None:
        """Let the link disconnect cleanly (it sends what it was given first)."""
        self._acks.close()
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self._events.close()


def is_live(message: mqtt.MQTTMessage) -> bool:
    """Whether the agent marked the message as live data (its lane, an MQTT 5 user
    property): scheduling advice, never trusted for anything else."""
    if wire.is_live_v2(message.payload):  # v2 says so in its envelope's first bytes
        return True
    lanes = getattr(message.properties, "UserProperty", None) or ()
    return (wire.LANE_PROPERTY, "live") in lanes


def run_link(settings: LinkSettings, events, acks) -> None:
    """The link process: forward every message to the collector, publish what it returns."""
    configure_logging(logging.getLevelName(settings.log_level), settings.log_format)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=settings.client_id,
                         protocol=mqtt.MQTTv5)
    if settings.tls:
        use_tls(client, settings.ca_file)
    use_account(client, settings.username, settings.password_file)

    def on_connect(client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the collector: %s", reason_code)
            return
        send_without_delay(client)
        client.subscribe([(topic, 1) for topic in settings.subscriptions])
        log.info("collector connected to %s:%d (MQTT link process %d)", settings.host,
                 settings.port, os.getpid())

    def forward(*event) -> None:
        try:
            events.send_bytes(msgpack.packb(event))
        except OSError:  # the collector has gone; the loop below ends the link
            pass

    def on_subscribe(client, userdata, mid, reason_codes, properties) -> None:
        if any(code.is_failure for code in reason_codes):
            log.error("broker refused the subscriptions %s: %s; does it support MQTT 5 "
                      "shared subscriptions?", settings.subscriptions, reason_codes)
            return
        forward(CONNECTED)
        log.info("collector ready: subscribed to %s", ", ".join(settings.subscriptions))

    def on_disconnect(client, userdata, flags, reason_code, properties) -> None:
        forward(DISCONNECTED, str(reason_code))

    def on_message(client, userdata, message) -> None:
        forward(MESSAGE, message.topic, message.payload, is_live(message), now_us())

    client.on_connect, client.on_subscribe = on_connect, on_subscribe
    client.on_disconnect, client.on_message = on_disconnect, on_message
    client.on_connect_fail = lambda client, userdata: log.warning(
        "cannot reach broker %s:%d; retrying", settings.host, settings.port)
    client.reconnect_delay_set(1, 30)
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = SESSION_EXPIRY_SECONDS
    client.connect_async(settings.host, settings.port, keepalive=30, clean_start=False,
                         properties=properties)
    client.loop_start()
    try:
        while True:
            topic, payload, retain = msgpack.unpackb(acks.recv_bytes())
            client.publish(topic, payload, qos=1, retain=retain)
    except (EOFError, OSError):  # the collector closed its end, or has gone
        pass
    finally:
        client.disconnect()
        client.loop_stop()
