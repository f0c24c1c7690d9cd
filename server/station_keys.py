"""Stations' keys as the verifying code needs them, looked up in the catalog and kept for a
few seconds; a key revoked, added or retired counts from the next refresh on. The
collector's batch pipeline and its product process each keep one."""

from __future__ import annotations

import time

from obslink.readings import now_us

KEY_CACHE_SECONDS = 5.0  # a station's keys are looked up again after this at the latest


class StationKeys:
    """Call it with a station id: {key id: (raw public key, status)}."""

    def __init__(self, catalog) -> None:
        self.catalog = catalog  # a connection of the caller's own (it may be committing)
        self._cache: dict[str, tuple[float, dict]] = {}
        self._version = None
        self._next_retirement: int | None = None  # µs: a key's grace period ends

    def refresh(self) -> None:
        """Forget what was looked up if a key changed (or a grace period ended) since."""
        version = self.catalog.keys_version()
        retired = self._next_retirement is not None and now_us() >= self._next_retirement
        if version != self._version or retired:
            self._cache.clear()
            self._version = version
            self._next_retirement = self.catalog.next_retirement()

    def clear(self) -> None:
        self._cache.clear()

    def __call__(self, station: str) -> dict:
        cached = self._cache.get(station)
        now = time.monotonic()
        if cached is None or now - cached[0] > KEY_CACHE_SECONDS or not cached[1]:
            cached = (now, self.catalog.station_keys(station))
            self._cache[station] = cached
        return cached[1]
