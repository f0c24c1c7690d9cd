"""Publishing batches to the broker and taking the collector's acknowledgements.

A PUBACK only means the broker has a batch; a batch leaves the outbox when the collector's
application-level ack (sent after its catalog commit) names it. Batches not acked within
``ack_timeout`` are published again: the collector is idempotent on the batch identity.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from obslink import wire
from obslink.agent.config import AgentConfig
from obslink.agent.outbox import Outbox
from obslink.errors import WireError
from obslink.keys import key_id

log = logging.getLogger(__name__)

SESSION_EXPIRY_SECONDS = 7 * 24 * 3600  # the broker keeps our acks queued through outages
# CONNACK reason codes after which retrying cannot help until someone changes the config.
FATAL_CONNECT_REASONS = {"Bad user name or password", "Not authorized", "Banned",
                         "Client identifier not valid"}


class Uplink:
    def __init__(self, config: AgentConfig, outbox: Outbox, private_key) -> None:
        self.config = config
        self.outbox = outbox
        self.key = private_key
        self.kid = key_id(private_key.public_key())
        self.topic = wire.data_topic(config.network, config.station)
        self.ack_topic = wire.ack_topic(config.network, config.station)
        self.status_topic = wire.status_topic(config.network, config.station)
        self.acks: queue.Queue[bytes] = queue.Queue()
        self.wake = threading.Event()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._reset_in_flight = threading.Event()
        self.in_flight: dict[int, float] = {}  # seq -> monotonic time published
        self.fatal_error: str | None = None
        self.client = self._make_client()
        self._pump = threading.Thread(target=self._pump_loop, name="uplink", daemon=True)

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.config.client_id,
                             protocol=mqtt.MQTTv5)
        client.will_set(self.status_topic, self._status_payload("offline"), qos=1, retain=True)
        client.reconnect_delay_set(int(self.config.reconnect_min),
                                   int(self.config.reconnect_max))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_connect_fail = self._on_connect_fail
        return client

    def _status_payload(self, state: str) -> bytes:
        return json.dumps({"state": state, "station": self.config.station,
                           "key_id": self.kid}).encode()

    def start(self) -> None:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = SESSION_EXPIRY_SECONDS
        self.client.connect_async(self.config.broker_host, self.config.broker_port,
                                  keepalive=self.config.keepalive, clean_start=False,
                                  properties=properties)
        self.client.loop_start()
        self._pump.start()

    def stop(self) -> None:
        self._stop.set()
        self.wake.set()
        self._pump.join(timeout=10)
        if self._connected.is_set():
            self.client.publish(self.status_topic, self._status_payload("offline"), qos=1,
                                retain=True).wait_for_publish(timeout=2)
        self.client.disconnect()
        self.client.loop_stop()

    # -- paho callbacks (network thread) -----------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            if str(reason_code) in FATAL_CONNECT_REASONS:
                self.fatal_error = (f"broker {self.config.broker_host}:"
                                    f"{self.config.broker_port} refused the connection: "
                                    f"{reason_code}; check the station's broker credentials")
                log.error("%s", self.fatal_error)
                client.disconnect()
                self._stop.set()
            else:
                log.warning("broker refused the connection (%s); retrying", reason_code)
            return
        log.info("connected to broker %s:%d (session present: %s)", self.config.broker_host,
                 self.config.broker_port, flags.session_present)
        client.subscribe(self.ack_topic, qos=1)
        client.publish(self.status_topic, self._status_payload("online"), qos=1, retain=True)
        self._reset_in_flight.set()  # whatever was in flight is published again
        self._connected.set()
        self.wake.set()

    def _on_connect_fail(self, client, userdata) -> None:
        log.warning("cannot reach broker %s:%d; readings wait in the outbox, retrying",
                    self.config.broker_host, self.config.broker_port)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        if not self._stop.is_set():
            log.warning("disconnected from broker (%s); reconnecting", reason_code)

    def _on_message(self, client, userdata, message) -> None:
        self.acks.put(message.payload)
        self.wake.set()

    # -- pump (its own thread) ---------------------------------------------------------------

    def _pump_loop(self) -> None:
        while not self._stop.is_set():
            self.wake.wait(timeout=0.5)
            self.wake.clear()
            try:
                self._take_acks()
                if self._connected.is_set():
                    self._publish_due()
            except Exception:  # keep the uplink alive; the outbox still holds everything
                log.exception("uplink step failed; retrying in a moment")
                time.sleep(1)

    def _take_acks(self) -> None:
        while True:
            try:
                payload = self.acks.get_nowait()
            except queue.Empty:
                return
            try:
                ack = wire.decode_ack(payload)
            except WireError as exc:
                log.warning("ignored a malformed ack on %s: %s", self.ack_topic, exc)
                continue
            removed, parked = self.outbox.apply_ack(ack)
            for seq in ack.committed:
                self.in_flight.pop(seq, None)
            for seq, reason in ack.refused:
                self.in_flight.pop(seq, None)
                log.error("collector refused batch %d: %s (parked; see `obslink agent "
                          "status`)", seq, reason)
            if removed or parked:
                self.wake.set()  # room in the window: publish more

    def _publish_due(self) -> None:
        now = time.monotonic()
        if self._reset_in_flight.is_set():
            self._reset_in_flight.clear()
            self.in_flight.clear()
        for seq, sent_at in list(self.in_flight.items()):
            if now - sent_at > self.config.ack_timeout:
                log.info("no ack for batch %d after %.0f s; publishing it again", seq,
                         self.config.ack_timeout)
                del self.in_flight[seq]
        room = self.config.max_in_flight - len(self.in_flight)
        if room <= 0:
            return
        for seq, body in self.outbox.unsent(room, set(self.in_flight)):
            payload = wire.seal(body, self.topic, self.key, self.kid)
            info = self.client.publish(self.topic, payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                log.warning("publish of batch %d failed (%s); will retry", seq,
                            mqtt.error_string(info.rc))
                return
            self.in_flight[seq] = now
