"""QC check ``source_flags``: the source's own flag on a reading, mapped onto the scale.

HJ 212 flags (HJ 212-2017 table of data flags) and the flags adapters set for values a
logger could not measure. A flag not in the table leaves the reading to the other checks.
Readings with no source flag are not this check's business.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Sequence

from obslink.plugins.qc import QCCheck, ReadingBatch, SeriesState
from obslink.plugins import hookimpl
from obslink.readings import QC_ERRONEOUS, QC_GOOD, QC_SUSPECT, Reading

SOURCE_FLAGS: dict[str, tuple[int, str]] = {
    "N": (QC_GOOD, "HJ 212: instrument working normally"),
    "T": (QC_SUSPECT, "HJ 212: above the instrument's measuring range"),
    "S": (QC_SUSPECT, "HJ 212: value set by hand"),
    "M": (QC_ERRONEOUS, "HJ 212: instrument under maintenance"),
    "C": (QC_ERRONEOUS, "HJ 212: instrument being calibrated"),
    "D": (QC_ERRONEOUS, "HJ 212: instrument fault"),
    "F": (QC_ERRONEOUS, "HJ 212: instrument stopped"),
    "B": (QC_ERRONEOUS, "HJ 212: communication fault with the instrument"),
    "NAN": (QC_ERRONEOUS, "logger: not a number"),
    "INF": (QC_ERRONEOUS, "logger: infinite value (over range)"),
    "-INF": (QC_ERRONEOUS, "logger: negative infinite value (under range)"),
}


_SEVERITY = {flag: severity for flag, (severity, _meaning) in SOURCE_FLAGS.items()}
_SOURCE_FLAG = itemgetter(5)


class SourceFlagCheck(QCCheck):
    name = "source_flags"
    summary = "the source's own flags (HJ 212 N/F/M/S/D/C/T/B, NAN) on the flag scale"

    def run(self, readings: Sequence[Reading], origin: str,
            state: SeriesState | None) -> list[int | None]:
        flags = readings.columns()[5] if isinstance(readings, ReadingBatch) else \
            list(map(_SOURCE_FLAG, readings))
        if flags.count(None) == len(flags):
            return [None] * len(flags)  # the usual case for loggers: no flags at all
        return list(map(_SEVERITY.get, flags))


@hookimpl
def obslink_register_qc_checks(registry):
    registry.add_qc_check(SourceFlagCheck)
