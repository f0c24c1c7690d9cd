"""QC check ``persistence``: a series that varies by no more than the element's
``persistence_min_variation`` over ``persistence_window_s`` is suspect (a stuck sensor)."""

from __future__ import annotations

from obslink.plugins.qc import ElementLimits, SeriesHistoryCheck
from obslink.plugins import hookimpl
from obslink.readings import QC_GOOD, QC_SUSPECT


class PersistenceCheck(SeriesHistoryCheck):
    name = "persistence"
    summary = "flat line: too little variation over a window"

    def plan(self, limits: ElementLimits, factor: float) -> tuple[float, int] | None:
        """(least variation in the reading's unit, window in µs)"""
        if limits.persistence_window_s is None or limits.persistence_min_variation is None:
            return None
        return limits.persistence_min_variation / factor, limits.persistence_window_s * 1_000_000

    def judge(self, times: list[int], values: list, plan: tuple[float, int],
              history: list | None) -> tuple[list[int | None], list | None]:
        """History: the current flat run, [start, last observed_at, lowest, highest]."""
        min_variation, window = plan
        start, last, low, high = history if history is not None else (None, None, 0.0, 0.0)
        flags: list[int | None] = []
        append = flags.append
        for t, value in zip(times, values):
            if value is None or (last is not None and t <= last):
                append(None)  # missing, or a repeat or an older reading: the run is newer
                continue
            if last is None or t - last > window:
                start, low, high = t, value, value  # first reading, or after a gap: new run
            else:
                if value < low:
                    low = value
                elif value > high:
                    high = value
                if high - low > min_variation:
                    start, low, high = t, value, value  # it moved: a new run from here
            last = t
            append(QC_SUSPECT if t - start >= window else QC_GOOD)
        return flags, None if last is None else [start, last, low, high]


@hookimpl
def obslink_register_qc_checks(registry):
    registry.add_qc_check(PersistenceCheck)
