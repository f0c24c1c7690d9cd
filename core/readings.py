"""The reading record every format adapter produces, and the UTC time helpers it needs.

Times are integers of microseconds since 1970-01-01T00:00:00Z: exact, cheap to encode, and
free of time-zone ambiguity. Conversion from logger-local time happens in the adapter.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

# QC flag scale (docs/qc.md). Adapters set NOT_CHECKED or MISSING; QC plugins refine it.
QC_GOOD = 0
QC_SUSPECT = 1
QC_ERRONEOUS = 2
QC_MISSING = 8
QC_NOT_CHECKED = 9
QC_FLAG_NAMES = {QC_GOOD: "good", QC_SUSPECT: "suspect", QC_ERRONEOUS: "erroneous",
                 QC_MISSING: "missing", QC_NOT_CHECKED: "not checked"}

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# The µs times a UTC text can show: 0001-01-01 to 9999-12-31 (what datetime represents)
MIN_TIME_US = -62_135_596_800_000_000
MAX_TIME_US = 253_402_300_799_999_999
_INF = float("inf")
_OFFSET_RE = re.compile(r"^(?:UTC|Z|([+-])(\d{1,2})(?::?(\d{2}))?)$", re.IGNORECASE)


class Reading(NamedTuple):
    """One observed value of one element at one time (a tuple: adapters make millions)."""

    observed_at: int  # µs since the Unix epoch, UTC
    element: str  # controlled vocabulary name, or the source's own code when unmapped
    value: float | None  # None when the source says the value is missing
    unit: str
    source_field: str  # the column or code in the source the value came from
    source_flag: str | None = None  # the source's own flag, verbatim (e.g. "NAN", HJ 212 "D")
    qc: int = QC_NOT_CHECKED
    # Seconds the value aggregates over, starting at observed_at; None for an instant value.
    period_s: int | None = None
    # Bit masks over the names of the QC checks that ran (obslink.plugins.qc_runner): which
    # checks applied to this reading, and which of them flagged it.
    qc_ran: int = 0
    qc_failed: int = 0
    # The unit the source wrote when it is not ``unit`` (obslink.plugins.units converted
    # the value, or renamed the spelling), kept for provenance; None: the source's own.
    source_unit: str | None = None


def non_finite_flag(value: float) -> str | None:
    """"NAN", "INF" or "-INF" for a value that cannot be an observation, else None.

    Adapters turn such values into missing readings with this flag: the wire and the
    catalog never carry NaN or infinities (docs/protocol.md).
    """
    if value != value:
        return "NAN"
    if value in (_INF, -_INF):
        return "INF" if value > 0 else "-INF"
    return None


def finite_only(readings: list[Reading]) -> list[Reading]:
    """The readings, with any NaN or infinite value (an adapter that let one through) made
    a missing reading flagged as built-in adapters do; the collector refuses such values."""
    if all(map(math.isfinite, [r.value for r in readings if r.value is not None])):
        return readings
    return [r if r.value is None or math.isfinite(r.value) else
            r._replace(value=None, source_flag=r.source_flag or non_finite_flag(r.value),
                       qc=QC_MISSING) for r in readings]


def parse_utc_offset(text: str) -> int:
    """Parse ``+08:00``, ``-0530``, ``+8``, ``UTC`` or ``Z`` into an offset in minutes.

    Loggers keep local time with no zone and no daylight saving, so a fixed offset is what
    a station's configuration states.
    """
    match = _OFFSET_RE.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a UTC offset; write it like +08:00, -05:00 or UTC")
    sign, hours, minutes = match.groups()
    if sign is None:
        return 0
    total = int(hours) * 60 + int(minutes or 0)
    if total > 14 * 60 or int(minutes or 0) >= 60:
        raise ValueError(f"{text!r} is outside the range of real UTC offsets (-14:00..+14:00)")
    return -total if sign == "-" else total


def local_to_utc_us(local: datetime, offset_minutes: int) -> int:
    """Convert a naive logger-local datetime to µs since the epoch (UTC)."""
    utc = local.replace(tzinfo=timezone.utc) - timedelta(minutes=offset_minutes)
    delta = utc - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def utc_us_from_datetime(moment: datetime) -> int:
    """µs since the epoch for an aware datetime."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def format_utc(us: int, fixed: bool = False) -> str:
    """ISO 8601 with ``Z``. Fractional seconds are kept without trailing zeros, or as six
    digits when ``fixed`` (fixed width sorts correctly as text)."""
    moment = _EPOCH + timedelta(microseconds=us)
    # the year by hand: strftime's %Y leaves years before 1000 unpadded on glibc
    text = f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}"
    if fixed:
        return f"{text}.{moment.microsecond:06d}Z"
    if moment.microsecond:
        return f"{text}.{moment.microsecond:06d}".rstrip("0") + "Z"
    return text + "Z"


def now_us() -> int:
    return utc_us_from_datetime(datetime.now(timezone.utc))
