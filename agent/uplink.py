"""Publishing batches to the broker and taking the collector's acknowledgements.

A PUBACK only means the broker has a batch; a batch leaves the outbox when the collector's
application-level ack (sent after its catalog commit) names it. A batch not acked is
published again after ``ack_timeout``, then after doubling waits (with jitter, up to
``ack_timeout_max``): the collector is idempotent on the batch identity.

Two lanes share the in-flight window. The live lane (batches whose newest reading is at
most ``realtime_window`` old) goes first, newest first, so an outage never delays live
data; the backlog drains oldest first behind it under a rate cap (readings/s, bytes/s).
Live batches carry the MQTT 5 user property ``obslink-lane: live`` so a busy collector
takes them before the backlog (scheduling only: it is not signed and grants nothing).
Gap reports (batches a full outbox evicted) are published on the station's gap topic until
an ack names them.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from obslink import wire
from obslink.agent.config import AgentConfig
from obslink.agent.outbox import Outbox
from obslink.errors import WireError
from obslink.keys import key_id
from obslink.mqtt_tcp import send_without_delay
from obslink.readings import now_us

log = logging.getLogger(__name__)

SESSION_EXPIRY_SECONDS = 7 * 24 * 3600  # the broker keeps our acks queued through outages
# CONNACK reason codes after which retrying cannot help until someone changes the config.
FATAL_CONNECT_REASONS = {"Bad user name or password", "Not authorized", "Banned",
                         "Client identifier not valid"}


def lane_properties(lane: str) -> Properties:
    properties = Properties(PacketTypes.PUBLISH)
    properties.UserProperty = (wire.LANE_PROPERTY, lane)
    return properties


LIVE, BACKLOG = lane_properties("live"), lane_properties("backlog")


@dataclass
class InFlight:  # a published batch awaiting its ack
    deadline: float  # monotonic time to publish it again if no ack came
    attempt: int  # publications so far
    lane: Properties  # LIVE or BACKLOG, as first published


class TokenBucket:
    """A rate cap: ``rate`` units a second, bursts up to ``burst``; rate 0 means no cap."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, max(burst, rate)
        self.tokens = self.burst
        self.updated = time.monotonic()

    def take(self, amount: float) -> bool:
        if not self.rate:
            return True
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        # a batch larger than the burst goes when the bucket is full, so nothing starves
        if self.tokens >= min(amount, self.burst):
            self.tokens -= amount
            return True
        return False




class Uplink:
    """One station's publishing, on its own MQTT connection and pump thread."""

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
        self.in_flight: dict[int, InFlight] = {}
        self.gaps_in_flight: dict[int, float] = {}  # gap id -> monotonic deadline
        self.fatal_error: str | None = None
        self.gap_topic = wire.gap_topic(config.network, config.station)
        self.backlog_readings = TokenBucket(config.backlog_readings_per_s,
                                            config.max_batch_readings)
        self.backlog_bytes = TokenBucket(config.backlog_bytes_per_s,
                                         config.backlog_bytes_per_s)
        # the collector's clock minus ours, from its acks (ms); None until one arrives
        self.collector_offset_ms: float | None = None
        self.client = self._make_client()
        self._pump = threading.Thread(target=self._pump_loop, name="uplink", daemon=True)
        self.wake_after = 0.5  # seconds the pump sleeps when nothing wakes it

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
        send_without_delay(client)
        client.subscribe(self.ack_topic, qos=1)
        client.publish(self.status_topic, self._status_payload("online"), qos=1, retain=True)
        self.connection_ready()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def connection_ready(self) -> None:
        """The client is connected (and subscribing to the ack topic)."""
        self._reset_in_flight.set()  # whatever was in flight is published again
        self._connected.set()
        self.wake.set()

    def take_ack(self, payload: bytes) -> None:
        self.acks.put(payload)
        self.wake.set()

    def _on_connect_fail(self, client, userdata) -> None:
        log.warning("cannot reach broker %s:%d; readings wait in the outbox, retrying",
                    self.config.broker_host, self.config.broker_port)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        if not self._stop.is_set():
            log.warning("disconnected from broker (%s); reconnecting", reason_code)

    def _on_message(self, client, userdata, message) -> None:
        self.take_ack(message.payload)

    # -- pump (its own thread) ---------------------------------------------------------------

    def _pump_loop(self) -> None:
        while not self._stop.is_set():
            self.wake.wait(timeout=self.wake_after)
            self.wake.clear()
            try:
                self.step()
            except Exception:  # keep the uplink alive; the outbox still holds everything
                log.exception("uplink step failed; retrying in a moment")
                time.sleep(1)

    def step(self) -> None:
        """One turn of the pump: take the acks that came, publish what is due. Sets
        ``wake_after``, the seconds until the next turn is needed if nothing wakes it."""
        self.wake_after = 0.5
        self._take_acks()
        if self._connected.is_set():
            self._publish_due()

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
            if ack.now is not None:
                self.collector_offset_ms = round((ack.now - now_us()) / 1000, 1)
            removed, parked = self.outbox.apply_ack(ack)
            for seq in ack.committed:
                self.in_flight.pop(seq, None)
            for gap in ack.gaps:
                self.gaps_in_flight.pop(gap, None)
            for seq, reason in ack.refused:
                self.in_flight.pop(seq, None)
                log.error("collector refused batch %d: %s (parked; see `obslink agent "
                          "status`)", seq, reason)
            if removed or parked:
                self.wake.set()  # room in the window: publish more

    def _publish_due(self) -> None:
        now = time.monotonic()
        if self._reset_in_flight.is_set():  # a new connection: publish them all again
            self._reset_in_flight.clear()
            for item in self.in_flight.values():
                item.deadline = now
            self.gaps_in_flight.clear()
        if not self._publish_again(now) or not self._publish_gaps(now):
            return
        room = self.config.max_in_flight - len(self.in_flight)
        if room <= 0:
            return
        live_since = now_us() - int(self.config.realtime_window * 1_000_000)
        live = self.outbox.lane(live_since, room, set(self.in_flight), newest_first=True)
        for seq, body, _readings, _size in live:
            if not self._publish(seq, body, now, attempt=1, lane=LIVE):
                return
        room -= len(live)
        # The backlog's own, smaller window: a fleet's backlog in flight is what live data
        # queues behind at the broker and the collector, so it is kept short.
        room = min(room, self.config.backlog_in_flight - sum(
            1 for item in self.in_flight.values() if item.lane is BACKLOG))
        if room <= 0:
            return
        for seq, body, readings, size in self.outbox.lane(
                live_since, room, set(self.in_flight), newest_first=False):
            if not (self.backlog_readings.take(readings) and self.backlog_bytes.take(size)):
                self.wake_after = 0.1  # the cap: try again shortly
                return
            if not self._publish(seq, body, now, attempt=1):
                return

    def _publish_again(self, now: float) -> bool:
        """Re-publish batches whose ack is overdue, each after a doubling, jittered wait."""
        for seq, item in list(self.in_flight.items()):
            if now < item.deadline:
                continue
            body = self.outbox.body(seq)
            if body is None:  # acked meanwhile, or evicted by a cap
                del self.in_flight[seq]
                continue
            log.info("no ack for batch %d after %d attempt(s); publishing it again", seq,
                     item.attempt)
            if not self._publish(seq, body, now, item.attempt + 1, item.lane):
                return False
        return True

    def _publish(self, seq: int, body: bytes, now: float, attempt: int,
                 lane: Properties = BACKLOG) -> bool:
        payload = wire.seal(body, self.topic, self.key, self.kid)
        info = self.client.publish(self.topic, payload, qos=1, properties=lane)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            log.warning("publish of batch %d failed (%s); will retry", seq,
                        mqtt.error_string(info.rc))
            return False
        self.in_flight[seq] = InFlight(now + self._backoff(attempt), attempt, lane)
        return True

    def _backoff(self, attempt: int) -> float:
        wait = min(self.config.ack_timeout * 2 ** (attempt - 1), self.config.ack_timeout_max)
        return wait * random.uniform(0.8, 1.2)  # jitter: stations do not retry in step

    def _publish_gaps(self, now: float) -> bool:
        for gap in self.outbox.unreported_gaps():
            if self.gaps_in_flight.get(gap.id, 0) > now:
                continue
            report = wire.GapReport(self.config.station, self.outbox.epoch, gap.id,
                                    gap.first_seq, gap.last_seq, gap.batches, gap.readings,
                                    gap.first_observed, gap.last_observed, gap.reason, gap.at)
            payload = wire.seal(wire.encode_gap(report), self.gap_topic, self.key, self.kid)
            if self.client.publish(self.gap_topic, payload, qos=1).rc != mqtt.MQTT_ERR_SUCCESS:
                return False
            self.gaps_in_flight[gap.id] = now + self.config.ack_timeout
        return True
