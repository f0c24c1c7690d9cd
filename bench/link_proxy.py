"""A TCP proxy on loopback between stations and the broker, for the protocol benches: it
counts every MQTT PUBLISH a station sends as whole packets (fixed header, variable header
with topic and properties, payload), and can make each connection a slow radio link (a rate
in bytes/s and a one-way delay, each direction on its own, like NB-IoT) or cut the link.

Bytes are queued in the proxy as they would be in a modem: a chunk leaves when the link has
carried everything before it, and arrives ``delay`` later.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

PUBLISH = 3


@dataclass
class Publish:
    at: float  # monotonic time the packet was complete at the proxy
    topic: str  # "" when the station used a topic alias
    size: int  # the whole packet, in bytes
    resolved: str = ""  # the topic, an alias resolved (with keep_payloads)
    payload: bytes = b""  # (with keep_payloads)


@dataclass
class PacketCounter:
    """Splits one client→broker byte stream into MQTT packets and records the PUBLISHes."""

    sink: list
    keep_payloads: bool = False
    buffer: bytearray = field(default_factory=bytearray)
    aliases: dict = field(default_factory=dict)  # this connection's topic aliases

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while True:
            size, header = _packet_length(self.buffer)
            if size is None or len(self.buffer) < size:
                return
            packet = bytes(self.buffer[:size])
            del self.buffer[:size]
            if packet[0] >> 4 == PUBLISH:
                topic_length = int.from_bytes(packet[header:header + 2], "big")
                topic = packet[header + 2:header + 2 + topic_length].decode(errors="replace")
                publish = Publish(time.monotonic(), topic, size)
                if self.keep_payloads:
                    self._read_payload(packet, header + 2 + topic_length, publish)
                self.sink.append(publish)

    def _read_payload(self, packet: bytes, position: int, publish: Publish) -> None:
        """The payload of an MQTT 5 PUBLISH and its topic, a topic alias resolved."""
        if (packet[0] >> 1) & 3:  # QoS 1 or 2: a packet identifier
            position += 2
        length, width = _varint(packet, position)
        properties, position = packet[position + width:position + width + length], \
            position + width + length
        alias, at = None, 0
        while at < len(properties):  # only the topic alias (0x23) is needed here
            identifier = properties[at]
            if identifier == 0x23:
                alias = int.from_bytes(properties[at + 1:at + 3], "big")
                break
            at += 1 + _property_width(properties, at + 1, identifier)
        if publish.topic and alias is not None:
            self.aliases[alias] = publish.topic
        publish.resolved = publish.topic or self.aliases.get(alias, "")
        publish.payload = packet[position:]


def _packet_length(buffer: bytearray) -> tuple[int | None, int]:
    """(whole packet length, fixed header length), or (None, 0) while incomplete."""
    remaining, shift = 0, 0
    for position in range(1, min(len(buffer), 5)):
        byte = buffer[position]
        remaining |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return 1 + position + remaining, 1 + position
    return None, 0


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value, shift, width = 0, 0, 0
    while True:
        byte = data[position + width]
        value |= (byte & 0x7F) << shift
        width += 1
        if not byte & 0x80:
            return value, width
        shift += 7


def _property_width(properties: bytes, at: int, identifier: int) -> int:
    """Bytes a PUBLISH property's value takes (MQTT 5, 2.2.2.2)."""
    if identifier in (0x01,):  # payload format indicator
        return 1
    if identifier in (0x02,):  # message expiry interval
        return 4
    if identifier in (0x23,):  # topic alias
        return 2
    if identifier == 0x0B:  # subscription identifier
        return _varint(properties, at)[1]
    if identifier in (0x03, 0x08, 0x09):  # content type, response topic, correlation data
        return 2 + int.from_bytes(properties[at:at + 2], "big")
    if identifier == 0x26:  # user property: two strings
        first = 2 + int.from_bytes(properties[at:at + 2], "big")
        return first + 2 + int.from_bytes(properties[at + first:at + first + 2], "big")
    raise ValueError(f"PUBLISH property 0x{identifier:02x}")


class LinkProxy:
    """Listens on a free loopback port and forwards to ``target_port``."""

    def __init__(self, target_port: int, rate_bytes_per_s: float = 0.0,
                 one_way_delay_s: float = 0.0, keep_payloads: bool = False) -> None:
        self.target_port = target_port
        self.keep_payloads = keep_payloads
        self.rate, self.delay = rate_bytes_per_s, one_way_delay_s
        self.publishes: list[Publish] = []  # from every connection, in arrival order
        self.port = 0
        self.down = False  # cut: connections are closed and new ones refused
        self._loop = asyncio.new_event_loop()
        self._connections: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="link-proxy", daemon=True)

    def start(self) -> "LinkProxy":
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def cut(self) -> None:
        """The link goes down: every connection is closed, new ones are refused."""
        self.down = True
        self._loop.call_soon_threadsafe(self._close_all)

    def restore(self) -> None:
        self.down = False

    def published(self, since: float = 0.0, data_only: bool = True) -> list[Publish]:
        """PUBLISH packets that arrived since ``since`` (monotonic), data topics only (v1 or
        v2, or an alias: the agents alias only their v2 data topic)."""
        return [p for p in list(self.publishes) if p.at >= since
                and (not data_only or p.topic == "" or p.topic.endswith("/data"))]

    def _close_all(self) -> None:
        for writer in list(self._connections):
            writer.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._accept, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _accept(self, client_reader, client_writer) -> None:
        if self.down:
            client_writer.close()
            return
        try:
            broker_reader, broker_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port)
        except OSError:
            client_writer.close()
            return
        self._connections.update((client_writer, broker_writer))
        counter = PacketCounter(self.publishes, self.keep_payloads)
        await asyncio.gather(self._pipe(client_reader, broker_writer, counter.feed),
                             self._pipe(broker_reader, client_writer, None),
                             return_exceptions=True)
        for writer in (client_writer, broker_writer):
            self._connections.discard(writer)
            writer.close()

    async def _pipe(self, reader, writer, observe) -> None:
        """One direction of one connection, as a link of ``rate`` and ``delay``."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()

        async def deliver() -> None:
            while True:
                arrives, data = await queue.get()
                if data is None:
                    break
                wait = arrives - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
            writer.close()

        sender = asyncio.ensure_future(deliver())
        free = loop.time()  # when the link has carried everything queued so far
        try:
            while True:
                data = await reader.read(16384)
                if not data:
                    break
                if observe is not None:
                    observe(data)
                now = loop.time()
                free = max(free, now) + (len(data) / self.rate if self.rate else 0.0)
                queue.put_nowait((free + self.delay, data))
        finally:
            queue.put_nowait((0.0, None))
            await asyncio.gather(sender, return_exceptions=True)
