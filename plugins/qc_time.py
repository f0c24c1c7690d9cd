"""QC check ``time``: an observation dated in the future, or long ago, is not plausible.

A logger whose clock jumped (a flat RTC battery resets it to 2000, a wrong year typed by
hand) dates its readings years off; nothing else catches it, and a reading from the future
would even count as the newest data. The present is the agent's best knowledge of it: the
kernel's clock when it is synchronised, else that clock corrected by the collector's (its
acks tell the offset); with neither, the check does not apply (QCSettings.now gives None).
An aggregate is judged by the end of its period. Like ``source_flags``, the check speaks
only when it finds something: a plausible time is not its business (None), so QC coverage
keeps measuring whether values were checked, not times.
"""

from __future__ import annotations

from typing import Sequence

from obslink.plugins.qc import QCCheck, ReadingBatch, SeriesState
from obslink.plugins import hookimpl
from obslink.readings import QC_ERRONEOUS, QC_SUSPECT, Reading


class TimeCheck(QCCheck):
    name = "time"
    summary = "observation times ahead of the present (erroneous) or long past (suspect)"

    def run(self, readings: Sequence[Reading], origin: str,
            state: SeriesState | None) -> list[int | None]:
        now = self.settings.now()
        if now is None or not readings:
            return [None] * len(readings)
        latest = now + self.settings.time.max_future_s * 1_000_000
        earliest = now - self.settings.time.max_past_s * 1_000_000
        columns = readings.columns() if isinstance(readings, ReadingBatch) else \
            tuple(zip(*readings))
        times, values, periods = columns[0], columns[2], columns[7]
        longest = max(filter(None, periods), default=0) * 1_000_000
        if min(times) >= earliest and max(times) + longest <= latest:
            return [None] * len(readings)  # the usual case, at C speed
        return [None if value is None else
                QC_ERRONEOUS if t + (period or 0) * 1_000_000 > latest else
                QC_SUSPECT if t < earliest else None
                for t, value, period in zip(times, values, periods)]


@hookimpl
def obslink_register_qc_checks(registry):
    registry.add_qc_check(TimeCheck)
