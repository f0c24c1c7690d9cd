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
Once the collector's acks say it takes bundles, backlog batches travel several to a
message under one signature (``backlog_bundle``), which is what lets a fleet drain a day's
outage in minutes; the window counts messages.
Gap reports (batches a full outbox evicted) are published on the station's gap topic until
an ack names them.

Once the collector's acks announce protocol v2 (and ``protocol`` allows it), batches travel
compact on the v2 data topic (docs/protocol.md, "Version 2"): each batch's context goes
along until an ack says the collector holds it, the topic after the first message of a
connection is an MQTT 5 topic alias, and the lane is a flag in the envelope. A batch v2
cannot carry exactly goes as v1.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import random
import threading
import time
from dataclasses import dataclass

import msgpack
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from obslink import wire
from obslink.agent.ack_timer import AckTimer
from obslink.agent.config import AgentConfig
from obslink.agent.link_state import LinkState
from obslink.agent.outbox import Outbox
from obslink.errors import ObslinkError, WireError
from obslink.keys import key_id, load_private_key, x25519_public_key_from_hex
from obslink.mqtt_tcp import explain_connect_failure, send_without_delay, use_account, use_tls
from obslink.readings import now_us

log = logging.getLogger(__name__)

SESSION_EXPIRY_SECONDS = 7 * 24 * 3600  # the broker keeps our acks queued through outages


def lane_properties(lane: str) -> Properties:
    properties = Properties(PacketTypes.PUBLISH)
    properties.UserProperty = (wire.LANE_PROPERTY, lane)
    return properties


LIVE, BACKLOG = lane_properties("live"), lane_properties("backlog")
V2_TOPIC_ALIAS = 1  # the one topic alias an agent sets: its v2 data topic




def v2_properties(alias: bool, lane: str | None) -> Properties | None:
    """A v2 publication's properties: the topic alias, and the lane only where the envelope
    cannot show it (a sealed message)."""
    if not alias and lane is None:
        return None
    properties = Properties(PacketTypes.PUBLISH)
    if alias:
        properties.TopicAlias = V2_TOPIC_ALIAS
    if lane is not None:
        properties.UserProperty = (wire.LANE_PROPERTY, lane)
    return properties


V2_PROPERTIES = {(alias, lane): v2_properties(alias, lane)
                 for alias in (False, True) for lane in (None, "live", "backlog")}


def restore_aliased_topics(client: mqtt.Client, topic: str) -> None:
    """Give messages paho holds for publishing again their topic back: a topic alias lives
    as long as one connection, and paho re-sends what the broker had not acknowledged when
    the next connection starts (a message with an empty topic and an alias the new
    connection never set would be a protocol error)."""
    with client._out_message_mutex:
        for message in client._out_messages.values():
            if not message._topic:
                message._topic = topic.encode()


IDLE_TURN_SECONDS = 5.0  # a pump's turn when nothing wakes it and nothing is overdue
# A bundle stops growing here, whatever backlog_bundle allows: it stays far below the
# collector's message limit and one bundle never holds up live data for long.
BUNDLE_MAX_BYTES = 256 * 1024


@dataclass
class InFlight:  # a published batch awaiting its ack
    deadline: float  # monotonic time to publish it again if no ack came
    attempt: int  # publications so far
    lane: Properties  # LIVE or BACKLOG, as first published
    message: int  # batches published together (a bundle) share this number
    sent_at: float  # monotonic time of this publication
    connection: int = 0  # the connection it was published on (Uplink.connections)


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


def connect_with_session(client: mqtt.Client, config: AgentConfig) -> None:
    """Connect in the background with a persistent session (the broker keeps what is
    queued for us through outages) and run paho's network loop."""
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = SESSION_EXPIRY_SECONDS
    client.connect_async(config.broker_host, config.broker_port, keepalive=config.keepalive,
                         clean_start=False, properties=properties)
    client.loop_start()


class Uplink:
    """One station's publishing, on its own MQTT connection and pump thread."""

    def __init__(self, config: AgentConfig, outbox: Outbox, private_key) -> None:
        self.config = config
        self.outbox = outbox
        self.key = private_key
        self.kid = key_id(private_key.public_key())
        self._key_stamp = self._key_file_stamp()
        # sealed to the collector when the network crosses brokers the operator does not run
        self.recipient = (x25519_public_key_from_hex(config.encrypt_to) if config.encrypt_to
                          else None)
        self.topic = wire.data_topic(config.network, config.station)
        self.topic_v2 = wire.data_topic_v2(config.network, config.station)
        # 2 once the collector's acks announce v2 (and config allows); remembered in the
        # outbox, so that a restart after an outage drains its backlog compact at once
        self.protocol = min(config.protocol, int(outbox.meta("collector_protocol") or 1))
        self._last_ack_at: float | None = None  # monotonic time of the newest ack
        self.known_contexts: set[bytes] = set()  # v2 contexts the collector said it holds
        self._alias_max = 0  # topic aliases the broker takes on this connection
        self.connections = 0  # counts connections; the alias is set per connection
        self._alias_on = -1  # the connection that has our alias
        self._stored_protocol = outbox.meta("collector_protocol")
        self.ack_topic = wire.ack_topic(config.network, config.station)
        self.status_topic = wire.status_topic(config.network, config.station)
        self.acks: queue.Queue[bytes] = queue.Queue()
        self.wake = threading.Event()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._reset_in_flight = threading.Event()
        self.in_flight: dict[int, InFlight] = {}
        self.ack_timer = AckTimer(config.ack_timeout, config.ack_timeout_max)
        self._messages = 0  # numbers the messages published
        # backlog batches per message: 1 until an ack says the collector takes bundles
        self.bundle_limit = 1
        self.gaps_in_flight: dict[int, float] = {}  # gap id -> monotonic deadline
        self.link = LinkState(outbox, f"{config.broker_host}:{config.broker_port}",
                              config.username)
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
        if self.config.tls:
            use_tls(client, str(self.config.ca_file) if self.config.ca_file else None)
        use_account(client, self.config.username, self.config.password_file)
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
        self.connect()
        self.start_publishing()

    def connect(self) -> None:
        """Connect (in the background, and again whenever the link drops)."""
        connect_with_session(self.client, self.config)

    def start_publishing(self) -> None:
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
            # Never fatal: an account the broker does not know yet (it reloads later) or a
            # wrong password is fixed elsewhere, while the sources keep buffering; paho
            # tries again after its reconnect delay, which doubles up to reconnect_max.
            self.link.refused(str(reason_code))
            return
        log.info("connected to broker %s:%d (session present: %s)", self.config.broker_host,
                 self.config.broker_port, flags.session_present)
        self.link.connected()
        self.connections += 1
        self._alias_max = getattr(properties, "TopicAliasMaximum", 0) or 0
        try:
            restore_aliased_topics(client, self.topic_v2)
        except AttributeError:  # a paho whose internals differ: no aliases, then
            log.warning("this paho-mqtt keeps its queue differently; publishing without "
                        "topic aliases")
            self._alias_max = 0
        send_without_delay(client)
        client.subscribe(self.ack_topic, qos=1)
        client.publish(self.status_topic, self._status_payload("online"), qos=1, retain=True)
        self.connection_ready()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def live_in_flight(self) -> bool:
        """Live batches published and not yet acknowledged: products wait for them."""
        try:
            return any(item.lane is LIVE for item in list(self.in_flight.values()))
        except RuntimeError:  # changed while being read: busy, then
            return True

    def connection_ready(self) -> None:
        """The client is connected (and subscribing to the ack topic)."""
        self._reset_in_flight.set()  # whatever was in flight is published again
        self._connected.set()
        self.wake.set()

    def take_ack(self, payload: bytes) -> None:
        self.acks.put(payload)
        self.wake.set()

    def _on_connect_fail(self, client, userdata) -> None:
        # paho does not say why; trying the connection again the same way does (a TLS
        # certificate's fault, a refused port …)
        self.link.unreachable(explain_connect_failure(
            self.config.broker_host, self.config.broker_port, self.config.tls,
            str(self.config.ca_file) if self.config.ca_file else None))

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        if was_connected and not self._stop.is_set():
            self.link.disconnected(str(reason_code))

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
        ``wake_after``, the seconds until the next turn is needed if nothing wakes it: a
        commit, an ack or a connection wakes the pump, so an idle station only needs a turn
        when an ack is overdue (a fleet of idle pumps polling costs a gateway's CPU)."""
        self.wake_after = IDLE_TURN_SECONDS
        self._reload_key_if_rotated()
        self._take_acks()
        if self._connected.is_set():
            self._publish_due()
        deadlines = [item.deadline for item in self.in_flight.values()]
        deadlines += self.gaps_in_flight.values()
        if deadlines:
            self.wake_after = max(0.01, min(self.wake_after,
                                            min(deadlines) - time.monotonic()))

    def _key_file_stamp(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self.config.private_key)
        except OSError:
            return None
        return stat.st_ino, stat.st_mtime_ns

    def _reload_key_if_rotated(self) -> None:
        """`obslink agent rotate-key` replaced the key file: sign with the new key from the
        next publication on (what the old key signed stays valid for its grace period)."""
        stamp = self._key_file_stamp()
        if stamp is None or stamp == self._key_stamp:
            return
        self._key_stamp = stamp
        try:
            key = load_private_key(self.config.private_key)
        except ObslinkError as exc:
            log.error("the key file changed but cannot be read (%s); still signing with key "
                      "%s", exc, self.kid)
            return
        if key_id(key.public_key()) != self.kid:
            self.key, self.kid = key, key_id(key.public_key())
            log.info("signing with the rotated key %s from now on", self.kid)

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
            self._take_protocol(ack)
            self.bundle_limit = max(1, min(self.config.backlog_bundle, ack.bundles or 1))
            ack.refused = self._own_refusals(ack.refused)
            removed, parked = self.outbox.apply_ack(ack)
            arrived, measured = time.monotonic(), set()
            for seq in ack.committed:
                item = self.in_flight.pop(seq, None)
                # one round trip per message, and only from a first publication
                if item is not None and item.attempt == 1 and item.message not in measured:
                    measured.add(item.message)
                    self.ack_timer.sample(arrived - item.sent_at)
            for gap in ack.gaps:
                self.gaps_in_flight.pop(gap, None)
            for seq, reason, *_key in ack.refused:
                self.in_flight.pop(seq, None)
                log.error("collector refused batch %d: %s (parked; see `obslink agent "
                          "status`)", seq, reason)
            if removed or parked:
                self.wake.set()  # room in the window: publish more

    def _take_protocol(self, ack: wire.Ack) -> None:
        """What an ack says of protocol v2: announced, contexts held, contexts unknown."""
        self._last_ack_at = time.monotonic()
        announced = ack.protocol or 1
        if min(self.config.protocol, announced) != self.protocol:
            self.protocol = min(self.config.protocol, announced)
            log.info("the collector takes protocol v%d; sending v%d", announced,
                     self.protocol)
        if str(announced) != self._stored_protocol:
            self._stored_protocol = str(announced)
            self.outbox.set_meta("collector_protocol", str(announced))
        self.known_contexts.update(ack.contexts)
        if ack.contexts_unknown:
            # a collector that lost them (a restored catalog): send them along again, now
            self.known_contexts.difference_update(ack.contexts_unknown)
            log.warning("the collector does not hold %d batch context(s); sending them "
                        "along again", len(ack.contexts_unknown))
            now = time.monotonic()
            for item in self.in_flight.values():
                item.deadline = min(item.deadline, now)
            self.wake.set()

    def _own_refusals(self, refused: list[tuple]) -> list[tuple]:
        """The refusals to park. One that names the key that signed the refused message is
        kept only if that is the key this agent signs with: a message signed with an older
        key (before a rotation) is simply published again with the current one, and one
        signed by a key this agent does not hold was not its own."""
        own = []
        for refusal in refused:
            if len(refusal) > 2 and refusal[2] != self.kid:
                log.warning("the collector refused batch %d signed with key %s (%s); this "
                            "agent signs with key %s now and publishes it again", refusal[0],
                            refusal[2], refusal[1], self.kid)
                continue
            own.append(refusal)
        return own

    def _publish_due(self) -> None:
        now = time.monotonic()
        if self._reset_in_flight.is_set():  # a new connection: publish them all again
            self._reset_in_flight.clear()
            for item in self.in_flight.values():
                item.deadline = now
            self.gaps_in_flight.clear()
        if not self._publish_again(now) or not self._publish_gaps(now):
            return
        messages = {item.message for item in self.in_flight.values()}
        room = self.config.max_in_flight - len(messages)
        if room <= 0:
            return
        live_since, live_until = self.live_window()
        live = self.outbox.lane(live_since, room, set(self.in_flight), newest_first=True,
                                live_until=live_until)
        for seq, body, _readings, _size in live:
            if not self._publish([(seq, body)], now, attempt=1, lane=LIVE):
                return
        room -= len(live)
        # The backlog's own, smaller window: a fleet's backlog in flight is what live data
        # queues behind at the broker and the collector, so it is kept short.
        room = min(room, self.config.backlog_in_flight - len(
            {item.message for item in self.in_flight.values() if item.lane is BACKLOG}))
        if room <= 0:
            return
        bundle: list[tuple[int, bytes]] = []
        size = 0
        for seq, body, readings, batch_bytes in self.outbox.lane(
                live_since, room * self.bundle_limit, set(self.in_flight), newest_first=False,
                live_until=live_until):
            if bundle and (len(bundle) == self.bundle_limit
                           or size + batch_bytes > BUNDLE_MAX_BYTES):
                if not self._publish(bundle, now, attempt=1):
                    return
                room -= 1
                bundle, size = [], 0
                if room <= 0:
                    return
            if not (self.backlog_readings.take(readings) and self.backlog_bytes.take(batch_bytes)):
                self.wake_after = 0.1  # the cap: try again shortly
                break
            bundle.append((seq, body))
            size += batch_bytes
        if bundle:
            self._publish(bundle, now, attempt=1)

    def live_window(self) -> tuple[int, int]:
        """(since, until) in µs: a batch whose newest reading falls in between is live. It
        reaches no further ahead than the time check lets a reading be dated, so a clock in
        the future never puts its batches before the present's."""
        now = now_us()
        return (now - int(self.config.realtime_window * 1_000_000),
                now + self.config.qc.time.max_future_s * 1_000_000)

    def _publish_again(self, now: float) -> bool:
        """Re-publish batches whose ack is overdue, each after a doubling, jittered wait;
        batches published together go together again."""
        overdue: dict[int, list[int]] = {}
        for seq, item in sorted(self.in_flight.items()):
            if now >= item.deadline:
                overdue.setdefault(item.message, []).append(seq)
        for seqs in overdue.values():
            first = self.in_flight[seqs[0]]
            if self.protocol >= 2 and first.attempt >= 2 and \
                    first.connection == self.connections and (
                        self._last_ack_at is None or self._last_ack_at < first.sent_at):
                # published twice on this connection and nothing answers v2 (a collector
                # of an older release): v1 until an ack announces v2 again
                log.warning("no ack for protocol v2 messages; sending v1 until the "
                            "collector announces v2")
                self.protocol = 1
            batches = []
            for seq in seqs:
                body = self.outbox.body(seq)
                if body is None:  # acked meanwhile, or evicted by a cap
                    del self.in_flight[seq]
                else:
                    batches.append((seq, body))
            if not batches:
                continue
            log.info("no ack for batch(es) %s after %d attempt(s); publishing again",
                     _seq_ranges([seq for seq, _ in batches]), first.attempt)
            limit = self.bundle_limit if first.lane is BACKLOG else 1
            for start in range(0, len(batches), limit):
                if not self._publish(batches[start:start + limit], now, first.attempt + 1,
                                     first.lane):
                    return False
        return True

    def _publish(self, batches: list[tuple[int, bytes]], now: float, attempt: int,
                 lane: Properties = BACKLOG) -> bool:
        """Publish one batch, or several as a bundle under one signature (v2 where the
        collector takes it; a batch v2 cannot carry goes as v1 in a message of its own)."""
        if self.protocol >= 2:
            compact, batches = self._compact(batches)
            if compact and not self._send(compact, now, attempt, lane, self._v2_message(
                    [item for _, item in compact], lane)):
                return False
            if not batches:
                return True
        if len(batches) == 1:
            payload = wire.sign(batches[0][1], self.topic, self.key, self.kid)
        else:
            payload = wire.sign_bundle([body for _, body in batches], self.topic, self.key,
                                       self.kid)
        payload = self.sealed(payload, self.topic)
        return self._send(batches, now, attempt, lane,
                          self.client.publish(self.topic, payload, qos=1, properties=lane))

    def _compact(self, batches: list[tuple[int, bytes]]) -> tuple[list, list]:
        """(seq, (context, v2 body)) of the batches v2 carries exactly; the rest as given."""
        compact, rest = [], []
        for seq, body in batches:
            try:
                v2_body, context = wire.compact.encode_body(msgpack.unpackb(body))
            except wire.NotCompact as exc:
                log.info("batch %d goes as protocol v1 (%s)", seq, exc)
                rest.append((seq, body))
                continue
            compact.append((seq, (context, v2_body)))
        return compact, rest

    def _v2_message(self, items: list[tuple[bytes, bytes]], lane: Properties):
        """Sign and publish (context, body) pairs as one v2 message; its MQTTMessageInfo."""
        send = {}
        for context, _body in items:
            ref = wire.context_ref(context)
            if ref not in self.known_contexts:
                send[ref] = context
        payload = self.sealed(wire.sign_v2(items, list(send.values()), self.topic_v2,
                                           self.key, self.kid, live=lane is LIVE),
                              self.topic_v2)
        use_alias, connection = self._alias_max >= V2_TOPIC_ALIAS, self.connections
        topic = "" if use_alias and self._alias_on == connection else self.topic_v2
        sealed_lane = ("live" if lane is LIVE else "backlog") if self.recipient else None
        info = self.client.publish(topic, payload, qos=1,
                                   properties=V2_PROPERTIES[(use_alias, sealed_lane)])
        if use_alias and info.rc == mqtt.MQTT_ERR_SUCCESS:
            self._alias_on = connection
        return info

    def _send(self, batches: list[tuple[int, object]], now: float, attempt: int,
              lane: Properties, info) -> bool:
        """Record a publication of ``batches`` (its MQTTMessageInfo ``info``) in flight."""
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            log.warning("publish of batch(es) %s failed (%s); will retry",
                        _seq_ranges([seq for seq, _ in batches]), mqtt.error_string(info.rc))
            return False
        self._messages += 1
        deadline = now + self._backoff(attempt)
        for seq, _item in batches:
            self.in_flight[seq] = InFlight(deadline, attempt, lane, self._messages, now,
                                           self.connections)
        return True

    def sealed(self, payload: bytes, topic: str) -> bytes:
        """The signed payload, sealed to the collector if the config says so."""
        return wire.seal(payload, topic, self.recipient) if self.recipient else payload

    def _backoff(self, attempt: int) -> float:
        wait = min(self.ack_timer.timeout() * 2 ** (attempt - 1), self.config.ack_timeout_max)
        return wait * random.uniform(0.8, 1.2)  # jitter: stations do not retry in step

    def _publish_gaps(self, now: float) -> bool:
        for gap in self.outbox.unreported_gaps():
            if self.gaps_in_flight.get(gap.id, 0) > now:
                continue
            report = wire.GapReport(self.config.station, self.outbox.epoch, gap.id,
                                    gap.first_seq, gap.last_seq, gap.batches, gap.readings,
                                    gap.first_observed, gap.last_observed, gap.reason, gap.at)
            payload = self.sealed(wire.sign(wire.encode_gap(report), self.gap_topic, self.key,
                                            self.kid), self.gap_topic)
            if self.client.publish(self.gap_topic, payload, qos=1).rc != mqtt.MQTT_ERR_SUCCESS:
                return False
            self.gaps_in_flight[gap.id] = now + self.config.ack_timeout
        return True


def _seq_ranges(seqs: list[int]) -> str:
    """``1-4, 7`` for log lines about many batches."""
    parts, ordered = [], sorted(seqs)
    start = previous = ordered[0]
    for seq in ordered[1:] + [None]:
        if seq is not None and seq == previous + 1:
            previous = seq
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if seq is not None:
            start = previous = seq
    return ", ".join(parts)
