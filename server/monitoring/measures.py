"""Completeness, availability, QC coverage and timeliness over a period, from the
catalog's hourly counts and each station's expected schedule (docs/monitoring.md).

A station's *streams* are its elements, one per reporting period (an hourly aggregate of
an element is a stream of its own): a change of unit or source field starts a new series
in the catalog but not a new stream. A stream is expected from its first observation on,
every interval of its schedule, until the station is retired."""

from __future__ import annotations

from dataclasses import dataclass, field

from obslink.server.catalog.monitor_counts import LATENCY_BOUNDS_S

#: the programme's availability target; a station at or above it over a period is complete
AVAILABILITY_TARGET = 0.98
#: WDQMS's timeliness thresholds (minutes) and the programme's one minute, in seconds
TIMELINESS_S = (60, 900, 1800, 7200)
#: the newest readings are not counted as missing before they could have arrived
ARRIVAL_GRACE_US = 60_000_000

NOT_REPORTING, BELOW, COMPLETE = "not-reporting", "below", "complete"


@dataclass
class Counts:
    """Summed hourly counts (monitor_hours' columns)."""

    received: int = 0
    usable: int = 0
    erroneous: int = 0
    checked: int = 0
    latency_sum: float = 0.0
    within: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BOUNDS_S))

    def add(self, row) -> None:
        """Add a row of (received, usable, erroneous, checked, latency_sum, *within)."""
        self.received += row[0]
        self.usable += row[1]
        self.erroneous += row[2]
        self.checked += row[3]
        self.latency_sum += row[4]
        self.within = [a + b for a, b in zip(self.within, row[5:])]

    def latency_quantile(self, share: float) -> float | None:
        """The smallest bucket bound at or below which ``share`` of the readings arrived
        (seconds; None when nothing arrived, inf when beyond the last bucket)."""
        if not self.received:
            return None
        for bound, within in zip(LATENCY_BOUNDS_S, self.within):
            if within >= share * self.received:
                return float(bound)
        return float("inf")

    def within_share(self, seconds: int) -> float | None:
        if not self.received:
            return None
        return self.within[LATENCY_BOUNDS_S.index(seconds)] / self.received


@dataclass
class Measure:
    """One station (or element, or the network) over [start_us, end_us)."""

    start_us: int
    end_us: int
    expected: int = 0
    counts: Counts = field(default_factory=Counts)

    def _share(self, part: int, whole: int) -> float | None:
        return part / whole if whole else None

    # Capped at 1, as WDQMS does: readings of the last minute count as received before
    # they count as expected (ARRIVAL_GRACE_US), and a reading sent twice counts twice.
    @property
    def completeness(self) -> float | None:
        share = self._share(self.counts.received, self.expected)
        return None if share is None else min(share, 1.0)

    @property
    def availability(self) -> float | None:
        share = self._share(self.counts.usable, self.expected)
        return None if share is None else min(share, 1.0)

    def as_dict(self, timeliness: bool = True) -> dict:
        """The measures as JSON; without ``timeliness`` (an element's: arrival times are
        counted per station) the latency fields are left out."""
        counts = self.counts
        if not timeliness:
            return {"expected": self.expected, "received": counts.received,
                    "usable": counts.usable, "erroneous": counts.erroneous,
                    "completeness": _round(self.completeness),
                    "availability": _round(self.availability),
                    "qc_coverage": _round(self._share(counts.checked, counts.received)),
                    "erroneous_share": _round(self._share(counts.erroneous,
                                                          counts.received))}
        return {
            "expected": self.expected, "received": counts.received, "usable": counts.usable,
            "erroneous": counts.erroneous,
            "completeness": _round(self.completeness),
            "availability": _round(self.availability),
            "availability_target": AVAILABILITY_TARGET,
            "qc_coverage": _round(self._share(counts.checked, counts.received)),
            "erroneous_share": _round(self._share(counts.erroneous, counts.received)),
            "latency_mean_s": _round(counts.latency_sum / counts.received
                                     if counts.received else None),
            "latency_p50_s": _bound(counts.latency_quantile(0.5)),
            "latency_p95_s": _bound(counts.latency_quantile(0.95)),
            "timeliness": {f"within_{seconds}s": _round(counts.within_share(seconds))
                           for seconds in TIMELINESS_S},
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _bound(value: float | None):
    """A quantile's bucket bound as JSON can hold it (beyond the last bucket: a string)."""
    if value == float("inf"):
        return f">{LATENCY_BOUNDS_S[-1]}"
    return value


def expected_count(interval_s: int, start_us: int, end_us: int) -> int:
    """How many multiples of the interval lie in [start_us, end_us)."""
    if end_us <= start_us:
        return 0
    step = interval_s * 1_000_000
    return -(-end_us // step) - -(-start_us // step)


@dataclass(frozen=True)
class Stream:
    station: str
    element: str
    period_s: int | None
    first_us: int
    last_us: int


def interval_of(stream: Stream, schedules: dict[tuple[str, str], int],
                station_interval: int | None, default_s: int) -> int:
    """A stream's reporting interval: the element's schedule at the station, else the
    period the series covers (an aggregate), else the station's, else the catalog's."""
    return (schedules.get((stream.station, stream.element)) or stream.period_s
            or station_interval or default_s)


def status_of(measure: Measure, silent: bool) -> str:
    """WDQMS-like colour: not reporting (nothing arrived, or silent now), below the
    availability target, complete."""
    if silent or not measure.counts.received:
        return NOT_REPORTING
    completeness = measure.completeness
    return COMPLETE if completeness is not None and completeness >= AVAILABILITY_TARGET \
        else BELOW
