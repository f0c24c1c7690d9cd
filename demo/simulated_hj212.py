"""A simulated HJ 212 data acquisition unit that keeps its history (tests and demos).

It listens for the agent (the tcp source's ``connect`` mode), uploads each minute it
measures as a CN 2051 packet while the agent is connected, keeps every minute, and
answers the standard's history request (the same CN with ``BeginTime``/``EndTime``) with
CN 9011, the stored uploads of that range, then CN 9012 — as units in the field do
(HJ 212-2017). ``unreachable()`` drops the link and refuses the agent until
``reachable()``; what it measures meanwhile is kept for a request."""

from __future__ import annotations

import re
import socket
import threading

from obslink.plugins.hj212 import frame, parse_segment
from obslink.plugins.hj212_history import local_text

PACKET = re.compile(rb"##(\d{4})(.*?)[0-9A-F]{4}\r\n", re.S)


class SimulatedDAU:
    def __init__(self, mn: str, utc_offset_minutes: int, factors: dict[str, float]) -> None:
        self.mn, self.offset = mn, utc_offset_minutes
        self.factors = factors  # code -> base value
        self.history: dict[int, bytes] = {}  # minute (UTC µs) -> its upload
        self.requests: list[dict[str, str]] = []  # history requests received, as parsed
        self.acknowledged = 0  # CN 9014 replies received
        self._lock = threading.Lock()
        self._connection: socket.socket | None = None
        self._server: socket.socket | None = None
        self.port = 0
        self.reachable()

    # -- the link ------------------------------------------------------------------------

    def reachable(self) -> None:
        self._server = socket.create_server(("127.0.0.1", self.port))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, args=(self._server,), daemon=True).start()

    def unreachable(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            _hang_up(server)
        with self._lock:
            if self._connection is not None:
                _hang_up(self._connection)
                self._connection = None

    def close(self) -> None:
        self.unreachable()

    @property
    def connected(self) -> bool:
        return self._connection is not None

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            with self._lock:
                if self._connection is not None:
                    _hang_up(self._connection)
                self._connection = connection
            threading.Thread(target=self._read, args=(connection,), daemon=True).start()

    def _read(self, connection: socket.socket) -> None:
        buffer = b""
        while True:
            try:
                chunk = connection.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while (match := PACKET.search(buffer)) is not None:
                buffer = buffer[match.end():]
                header, cp = parse_segment(match.group(2).decode())
                if header.get("CN") == "9014":
                    self.acknowledged += 1
                elif "BeginTime=" in cp:
                    self._answer(connection, header, cp)

    def _send(self, connection: socket.socket, segment: str) -> None:
        with self._lock:
            try:
                connection.sendall(frame(segment.encode()))
            except OSError:
                pass  # the link dropped: the agent asks again

    # -- data ----------------------------------------------------------------------------

    def measure(self, minute_us: int) -> None:
        """Measure a minute: kept, and uploaded if the agent is connected."""
        data_time = local_text(minute_us, self.offset)
        values = ";".join(f"{code}-Avg={base + minute_us // 60_000_000 % 7},{code}-Flag=N"
                          for code, base in self.factors.items())
        segment = (f"QN={data_time}000;ST=22;CN=2051;PW=123456;MN={self.mn};Flag=5;"
                   f"CP=&&DataTime={data_time};{values}&&")
        self.history[minute_us] = segment.encode()
        with self._lock:
            connection = self._connection
        if connection is not None:
            self._send(connection, segment)

    def _answer(self, connection: socket.socket, request: dict[str, str], cp: str) -> None:
        self.requests.append({**request, **dict(item.split("=", 1) for item in cp.split(";"))})
        qn, flag = request["QN"], request.get("Flag", "5")
        common = f"ST=91;PW={request.get('PW', '')};MN={self.mn}"
        self._send(connection, f"QN={qn};{common};CN=9011;Flag=4;CP=&&QnRtn=1&&")
        begin, end = self.requests[-1]["BeginTime"], self.requests[-1]["EndTime"]
        for minute in sorted(self.history):
            if begin <= local_text(minute, self.offset) <= end:
                self._send(connection, self.history[minute].decode().replace(
                    "Flag=5", f"Flag={flag}"))
        self._send(connection, f"QN={qn};{common};CN=9012;Flag=4;CP=&&ExeRtn=1&&")


def _hang_up(sock: socket.socket) -> None:
    """Close a socket another thread may be blocked on: shutdown wakes it (and sends the
    peer its FIN); a plain close leaves the kernel's socket open under it on Linux."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
