"""QC check ``step``: a change between consecutive readings of one series larger than the
element's ``step_max`` is suspect, when the readings are at most ``step_interval_s`` apart."""

from __future__ import annotations

from operator import sub

from obslink.plugins.qc import ElementLimits, SeriesHistoryCheck
from obslink.plugins import hookimpl
from obslink.readings import QC_GOOD, QC_SUSPECT


class StepCheck(SeriesHistoryCheck):
    name = "step"
    summary = "largest plausible change between consecutive readings of a series"
    _spacing_of: list | None = None  # the times list _spacing was computed for
    _spacing: tuple[int, int] = (0, 0)  # its smallest and largest gap

    def plan(self, limits: ElementLimits, factor: float) -> tuple[float, int] | None:
        """(largest step in the reading's unit, interval in µs)"""
        if limits.step_max is None:
            return None
        return limits.step_max / factor, limits.step_interval_s * 1_000_000

    def judge(self, times: list[int], values: list, plan: tuple[float, int],
              history: list | None) -> tuple[list[int | None], list | None]:
        """History: [observed_at, value] of the last reading judged."""
        step_max, interval = plan
        count = len(times)
        if count > 1 and None not in values and (history is None or times[0] > history[0]):
            if self._evenly_spaced(times, interval) and \
                    max(map(abs, map(sub, values[1:], values[:-1]))) <= step_max:
                # the usual case, at C speed: evenly reported, no jumps; only the first
                # reading needs the history
                first, _ = self.judge(times[:1], values[:1], plan, history)
                return first + [QC_GOOD] * (count - 1), [times[-1], values[-1]]
        flags: list[int | None] = []
        last_t, last_value = history if history is not None else (None, None)
        for t, value in zip(times, values):
            flag = None
            if value is not None and (last_t is None or t > last_t):
                if last_t is not None and t - last_t <= interval:
                    flag = QC_SUSPECT if abs(value - last_value) > step_max else QC_GOOD
                last_t, last_value = t, value
            flags.append(flag)
        return flags, None if last_t is None else [last_t, last_value]


    def _evenly_spaced(self, times: list[int], interval: int) -> bool:
        """Every gap positive and within the interval. Series of one batch often share one
        list of times: it is looked at once."""
        if self._spacing_of is not times:
            gaps = list(map(sub, times[1:], times[:-1]))
            self._spacing_of, self._spacing = times, (min(gaps), max(gaps))
        smallest, largest = self._spacing
        return smallest > 0 and largest <= interval


@hookimpl
def obslink_register_qc_checks(registry):
    registry.add_qc_check(StepCheck)
