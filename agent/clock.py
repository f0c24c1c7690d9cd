"""The gateway clock's synchronisation state, as the kernel's NTP discipline reports it.

Every batch carries it (docs/protocol.md, ``clock``), so the centre can tell readings
stamped by a clock nobody disciplines from those of a synchronised one. Reading it is a
read-only ``adjtimex(2)`` call: no NTP client of ours, no privileges, no network.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

TIME_ERROR = 5  # adjtimex: the clock is not synchronised
STA_UNSYNC = 0x0040
STA_NANO = 0x2000  # offset is in nanoseconds, not microseconds


class _Timex(ctypes.Structure):
    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long),
                ("status", ctypes.c_int), ("constant", ctypes.c_long),
                ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
                ("time_sec", ctypes.c_long), ("time_usec", ctypes.c_long),
                ("tick", ctypes.c_long), ("ppsfreq", ctypes.c_long), ("jitter", ctypes.c_long),
                ("shift", ctypes.c_int), ("stabil", ctypes.c_long), ("jitcnt", ctypes.c_long),
                ("calcnt", ctypes.c_long), ("errcnt", ctypes.c_long), ("stbcnt", ctypes.c_long),
                ("tai", ctypes.c_int), ("_reserved", ctypes.c_int * 11)]


def _load_adjtimex():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        function = libc.adjtimex
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.POINTER(_Timex)]
    function.restype = ctypes.c_int
    return function


class ClockState:
    """Reads the kernel's view of the clock; ``None`` fields where it cannot be known."""

    def __init__(self) -> None:
        self._adjtimex = _load_adjtimex()

    def read(self) -> dict:
        """{"synced": bool|None, "offset_ms": float|None, "error_ms": float|None}"""
        if self._adjtimex is None:
            return {"synced": None, "offset_ms": None, "error_ms": None}
        timex = _Timex()
        state = self._adjtimex(ctypes.byref(timex))
        if state < 0:
            return {"synced": None, "offset_ms": None, "error_ms": None}
        synced = state != TIME_ERROR and not timex.status & STA_UNSYNC
        scale = 1e6 if timex.status & STA_NANO else 1e3
        return {"synced": synced,
                "offset_ms": round(timex.offset / scale, 3) if synced else None,
                "error_ms": round(timex.esterror / 1e3, 3) if synced else None}
