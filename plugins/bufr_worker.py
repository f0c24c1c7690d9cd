"""ecCodes in a process of its own, so a damaged BUFR message cannot crash the agent.

ecCodes trusts the descriptors and lengths inside a message; damaged ones can make it abort
or segfault (found by the hypothesis tests). The BUFR adapter therefore hands each message
to a worker process (``python -m obslink.plugins.bufr_worker_process``) and reads back its
readings.
When the worker dies on a message, that message is quarantined with the reason and a new
worker takes the next one. Frames on the pipes are a 4-byte big-endian length + msgpack.
"""

from __future__ import annotations

import atexit
import signal
import struct
import subprocess
import sys
import threading
from typing import Any

import msgpack

from obslink.readings import Reading

FRAME_HEADER = struct.Struct(">I")  # frame header, shared with bufr_worker_process


class WorkerDied(Exception):
    """The worker process ended while decoding a message."""


class BUFRWorker:
    """One worker process, shared by the BUFR adapters of this process (one at a time)."""

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None
        self._lock = threading.Lock()
        atexit.register(self.close)

    def decode(self, message: bytes, context: dict[str, Any]) -> tuple[list[Reading], int,
                                                                      str | None]:
        """(readings, subsets skipped, problem or None) for one message."""
        with self._lock:
            try:
                reply = self._ask({"message": message, "context": context})
            except WorkerDied as exc:
                return [], 0, str(exc)
        return ([Reading(*fields) for fields in reply["readings"]], reply["skipped"],
                reply["problem"])

    def _ask(self, request: dict) -> dict:
        process = self._running()
        body = msgpack.packb(request, use_bin_type=True)
        try:
            process.stdin.write(FRAME_HEADER.pack(len(body)) + body)
            process.stdin.flush()
            header = process.stdout.read(FRAME_HEADER.size)
            reply = process.stdout.read(FRAME_HEADER.unpack(header)[0]) \
                if len(header) == FRAME_HEADER.size else b""
        except (BrokenPipeError, OSError, struct.error):
            reply = b""
        if not reply:
            raise WorkerDied(self._death_notice(process))
        return msgpack.unpackb(reply, raw=False)

    def _running(self) -> subprocess.Popen:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "obslink.plugins.bufr_worker_process"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        return self._process

    def _death_notice(self, process: subprocess.Popen) -> str:
        try:
            code = process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        self._process = None
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        return (f"ecCodes crashed decoding this message (worker process {how}); the message "
                "is damaged in a way ecCodes cannot survive")

    def close(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.stdin.close()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()


_shared: BUFRWorker | None = None
_shared_lock = threading.Lock()


def shared_worker() -> BUFRWorker:
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = BUFRWorker()
        return _shared
