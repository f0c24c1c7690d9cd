"""Sending products: the signed manifest, then the chunks the collector does not hold yet,
on an MQTT connection of the products' own (docs/products.md).

Observations go first: while the observation uplink has live batches waiting or in flight,
no chunk is published; chunks are capped in number in flight (``product_in_flight``) and in
bytes per second (``product_bytes_per_s``), so a 30 MB volume never sits in front of the
minute that just happened. The newest product (by scan time) goes first; backlog products
follow. A chunk not acknowledged within ``ack_timeout`` is sent again; an ack lists every
chunk the collector holds, so after any restart only the missing ones travel.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from obslink import wire
from obslink.agent.config import AgentConfig
from obslink.agent.product_outbox import Pending, ProductOutbox
from obslink.agent.uplink import TokenBucket, connect_with_session
from obslink.errors import WireError
from obslink.mqtt_tcp import use_account, use_tls

log = logging.getLogger(__name__)

IDLE_TURN_SECONDS = 2.0
BUSY_TURN_SECONDS = 0.1  # held back by live observations or the bandwidth cap


class ProductUplink:
    def __init__(self, config: AgentConfig, outbox: ProductOutbox, signing_key,
                 observations_busy=lambda: False) -> None:
        """``signing_key()`` gives (private key, key id): the observation uplink's, which
        follows `obslink agent rotate-key`."""
        self.config, self.outbox, self.signing_key = config, outbox, signing_key
        self.observations_busy = observations_busy
        self.topic = wire.product_topic(config.network, config.station)
        self.ack_topic = wire.product_ack_topic(config.network, config.station)
        self.acks: queue.Queue[bytes] = queue.Queue()
        self.wake = threading.Event()
        self._stop = threading.Event()
        self._connected = threading.Event()
        # (product, chunk index) -> monotonic deadline; a manifest is chunk index -1
        self.in_flight: dict[tuple[int, int], float] = {}
        self.gaps_in_flight: dict[int, float] = {}
        self.bucket = TokenBucket(config.product_bytes_per_s,
                                  max(config.product_bytes_per_s, config.product_chunk_bytes))
        self.sent_chunks = self.sent_again = 0
        self._soon: float | None = None  # seconds to the next turn, when held back
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  client_id=f"{config.client_id}-products",
                                  protocol=mqtt.MQTTv5)
        if config.tls:
            use_tls(self.client, str(config.ca_file) if config.ca_file else None)
        use_account(self.client, config.username, config.password_file)
        self.client.reconnect_delay_set(int(config.reconnect_min), int(config.reconnect_max))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_: self._connected.clear()
        self.client.on_message = lambda client, userdata, message: self._take(message.payload)
        # chunks can be large; paho's own queue is kept to what the window allows
        self.client.max_queued_messages_set(0)
        self._pump = threading.Thread(target=self._pump_loop, name="product-uplink",
                                      daemon=True)

    def start(self) -> None:
        connect_with_session(self.client, self.config)
        self._pump.start()

    def stop(self) -> None:
        self._stop.set()
        self.wake.set()
        self._pump.join(timeout=10)
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("product uplink: the broker refused the connection (%s)", reason_code)
            return
        client.subscribe(self.ack_topic, qos=1)
        self.in_flight.clear()  # what was in flight is sent again from what acks said
        self._connected.set()
        self.wake.set()

    def _take(self, payload: bytes) -> None:
        self.acks.put(payload)
        self.wake.set()

    def _pump_loop(self) -> None:
        # this thread reads, copies and publishes MiB chunks: it yields the CPU to the
        # observations' threads (Linux schedules threads alone; elsewhere nothing changes)
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except (AttributeError, OSError):
            pass
        while not self._stop.is_set():
            self.wake.wait(timeout=self.wake_after())
            self.wake.clear()
            try:
                self.step()
            except Exception:  # the outbox still holds everything: try again
                log.exception("product uplink step failed; retrying in a moment")
                time.sleep(1)

    def wake_after(self) -> float:
        deadlines = list(self.in_flight.values()) + list(self.gaps_in_flight.values())
        wait = IDLE_TURN_SECONDS if self._soon is None else self._soon
        if deadlines:
            wait = min(wait, min(deadlines) - time.monotonic())
        return max(0.01, wait)

    def step(self) -> None:
        self._take_acks()
        if not self._connected.is_set():
            return
        self._report_gaps()
        self._send_due()

    def _take_acks(self) -> None:
        while True:
            try:
                payload = self.acks.get_nowait()
            except queue.Empty:
                return
            try:
                ack = wire.decode_product_ack(payload)
            except WireError as exc:
                log.warning("product uplink: ignoring a malformed ack (%s)", exc)
                continue
            if ack.gap is not None:
                self.gaps_in_flight.pop(ack.gap, None)
                self.outbox.gap_reported(ack.gap)
                continue
            done = self.outbox.record_ack(ack)
            held = {index for first, last in ack.have for index in range(first, last + 1)}
            bad = {index for index, _reason in ack.bad}
            for (product, index) in list(self.in_flight):
                if product != ack.product:
                    continue
                if done or index in held or index in bad or index == -1 or \
                        ack.need_manifest:
                    self.in_flight.pop((product, index), None)
            if ack.bad and not done:
                self._check_copy(ack)
            if done and ack.record:
                log.info("product %d registered as %s", ack.product, ack.record)

    def _check_copy(self, ack: wire.ProductAck) -> None:
        """A chunk the collector refused goes again, unless the outbox's own copy is what
        is wrong (then no sending helps: the product leaves, reported as a gap)."""
        pending = next((p for p in self.outbox.pending() if p.id == ack.product), None)
        if pending is None:
            return
        for index, reason in ack.bad:
            if not self.outbox.chunk_intact(pending, index):
                self.outbox.drop_damaged(pending, index)
                self.in_flight = {key: deadline for key, deadline in self.in_flight.items()
                                  if key[0] != ack.product}
                return
            log.warning("product %d chunk %d refused by the collector (%s); sending it "
                        "again", ack.product, index, reason)

    def _report_gaps(self) -> None:
        now = time.monotonic()
        for gap in self.outbox.unreported_gaps():
            if self.gaps_in_flight.get(gap["id"], 0) > now:
                continue
            body = wire.encode_product_gap(wire.ProductGap(
                self.config.station, self.outbox.epoch, gap["id"], gap["name"], gap["size"],
                gap["observed_us"], gap["reason"], gap["detail"], gap["at"]))
            self._publish(body)
            self.gaps_in_flight[gap["id"]] = now + self.config.ack_timeout

    def _send_due(self) -> None:
        self._soon = None
        if self.observations_busy():
            self._soon = BUSY_TURN_SECONDS  # observations first: look again shortly
            return
        now = time.monotonic()
        for (key, deadline) in list(self.in_flight.items()):
            if deadline <= now:  # no ack in time: send it again
                del self.in_flight[key]
                self.sent_again += 1
        window = self.config.product_in_flight
        for pending in self.outbox.pending():
            if len(self.in_flight) >= window:
                return
            # the manifest until an ack shows the collector has it (chunks may follow it at
            # once: one connection's messages arrive in order)
            if not pending.manifest_sent and (pending.id, -1) not in self.in_flight:
                self._publish(pending.body)
                self.in_flight[(pending.id, -1)] = now + self.config.ack_timeout
            for index in pending.missing():
                if len(self.in_flight) >= window:
                    return
                if (pending.id, index) in self.in_flight:
                    continue
                if not self._send_chunk(pending, index, now):
                    return

    def _send_chunk(self, pending: Pending, index: int, now: float) -> bool:
        data = self.outbox.read_chunk(pending, index)
        if not self.bucket.take(len(data)):
            self._soon = BUSY_TURN_SECONDS  # the bandwidth cap: the bucket refills
            return False
        body = wire.encode_chunk(wire.Chunk(self.config.station, self.outbox.epoch, pending.id,
                                            index, pending.manifest.chunk_sha256[index], data))
        self._publish(body, data)  # the data beside the signed header (docs/protocol.md)
        self.in_flight[(pending.id, index)] = now + self.config.ack_timeout
        self.sent_chunks += 1
        return True

    def _publish(self, body: bytes, attachment: bytes | None = None) -> None:
        key, kid = self.signing_key()
        payload = wire.sign(body, self.topic, key, kid, attachment)
        if self.config.encrypt_to:
            from obslink.keys import x25519_public_key_from_hex

            payload = wire.seal(payload, self.topic,
                                x25519_public_key_from_hex(self.config.encrypt_to))
        self.client.publish(self.topic, payload, qos=1)
