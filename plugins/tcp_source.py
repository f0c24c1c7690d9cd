"""A TCP byte stream: data acquisition units that push packets (HJ 212), either connecting
to the agent (``listen``) or accepting the agent's connection (``connect``).

Each connection gets its own adapter. Decoded readings are committed through the sink, and
only after that commit returns are the adapter's replies (e.g. HJ 212 CN 9014) sent: a
device never hears "received" for data that is not yet durable, so it resends what a crash
lost. A partial packet at a disconnect is dropped; the device sends it again.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import threading

from obslink.plugins import hookimpl
from obslink.plugins.sources import ChunkOrigin, Source, SourcePosition
from obslink.settings import Setting

log = logging.getLogger(__name__)


def _address(text: str) -> tuple[str, int]:
    host, sep, port = str(text).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(text)
    return host.strip("[]"), int(port)


class TCPSource(Source):
    type = "tcp"
    summary = "a TCP stream that devices push packets over (listen, or connect out)"
    declared_settings = (
        Setting("listen", "", "`host:port` the agent listens on; devices connect to it (e.g. "
                "`0.0.0.0:9000`)", shown_default="—"),
        Setting("connect", "", "`host:port` of a device the agent connects to, reconnecting "
                "after failures", shown_default="—"),
        Setting("reconnect_max", 60.0, "longest delay between connection attempts in "
                "`connect` mode, seconds", kind="number"),
        Setting("read_bytes", 65536, "bytes read from the socket at a time", kind="int"),
    )

    @classmethod
    def check_settings(cls, settings):
        listen, connect = settings.get("listen", ""), settings.get("connect", "")
        if bool(listen) == bool(connect):
            return [("listen", 'set exactly one of listen = "0.0.0.0:9000" (devices connect '
                               'to the agent) or connect = "host:port" (the agent connects)')]
        key = "listen" if listen else "connect"
        try:
            _address(settings[key])
        except ValueError:
            return [(key, f"{settings[key]!r} is not host:port")]
        return []

    def __init__(self, name, settings, make_adapter, sink) -> None:
        super().__init__(name, settings, make_adapter, sink)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: socket.socket | None = None

    def start(self, scheduler) -> None:
        if self.setting("listen"):
            host, port = _address(self.setting("listen"))
            self._server = socket.create_server((host, port), reuse_port=False)
            self._server.settimeout(0.5)
            log.info("source %s: listening on %s:%d", self.name, host,
                     self._server.getsockname()[1])
            self._spawn(self._accept_loop, "accept")
        else:
            self._spawn(self._connect_loop, "connect")

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _spawn(self, target, what, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True,
                                  name=f"{self.name}-{what}")
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                connection, peer = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the server socket was closed by stop()
            log.info("source %s: device connected from %s:%d", self.name, *peer[:2])
            self._spawn(self._serve, f"peer-{peer[0]}", connection, peer[0])

    def _connect_loop(self) -> None:
        host, port = _address(self.setting("connect"))
        delay = 1.0
        while not self._stop.is_set():
            try:
                connection = socket.create_connection((host, port), timeout=10)
            except OSError as exc:
                log.warning("source %s: cannot connect to %s:%d (%s); retrying in %.0f s",
                            self.name, host, port, exc.strerror or exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, float(self.setting("reconnect_max")))
                continue
            delay = 1.0
            log.info("source %s: connected to %s:%d", self.name, host, port)
            self._serve(connection, host)

    def _serve(self, connection: socket.socket, peer: str) -> None:
        adapter = self.make_adapter()
        # what the adapter keeps of a device (HJ 212: the periods received and asked
        # for) carries over from its last connection from this address
        known = self.sink.positions(self.name).get(peer)
        adapter.set_state(known.state if known else None)
        adapter.start_stream(peer)
        buffer, position = b"", 0
        connection.settimeout(0.5)
        with connection:
            while not self._stop.is_set():
                try:
                    chunk = connection.recv(int(self.setting("read_bytes")))
                except TimeoutError:
                    continue
                except OSError as exc:
                    log.warning("source %s: connection from %s failed: %s", self.name, peer,
                                exc)
                    return
                if not chunk:
                    break
                buffer += chunk
                # a format plugin's bug is contained by the agent's guard (adapter_guard)
                decoded = adapter.decode(buffer, start=position, final=False)
                if decoded.consumed == 0:
                    continue
                taken = buffer[:decoded.consumed]
                origin = ChunkOrigin(self.name, peer, position, position + decoded.consumed,
                                     hashlib.sha256(taken).digest())
                try:
                    self.sink.commit(origin, decoded, SourcePosition(
                        origin.end, peer, adapter.get_state()), adapter)
                except Exception:
                    # Not durable, so not acknowledged: close, and the device sends again.
                    log.exception("source %s: could not store data from %s; closing the "
                                  "connection so the device resends", self.name, peer)
                    return
                for reply in decoded.replies:
                    connection.sendall(reply)
                buffer, position = buffer[decoded.consumed:], origin.end
        if buffer:
            log.info("source %s: %s disconnected with %d bytes of an incomplete packet; the "
                     "device will send it again", self.name, peer, len(buffer))


@hookimpl
def obslink_register_sources(registry):
    registry.add_source(TCPSource)
