"""QC check ``range``: physical limits (outside: erroneous) and climatological limits
(outside: suspect), per element, per month where the station config sets months."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Sequence

from obslink.plugins.qc import QCCheck, SeriesState, series_of, to_unit
from obslink.plugins import hookimpl
from obslink.readings import QC_ERRONEOUS, QC_GOOD, QC_SUSPECT, Reading

_DAY_US = 86_400 * 1_000_000
_EPOCH_DATE = date(1970, 1, 1)
_INF = float("inf")


class RangeCheck(QCCheck):
    name = "range"
    summary = "physical (erroneous) and climatological (suspect) limits per element and month"

    def __init__(self, settings) -> None:
        super().__init__(settings)
        # (element, unit) -> bounds in the reading's unit (lo_err, hi_err, lo_sus, hi_sus),
        # None, or for month limits a dict month -> such bounds
        self._plans: dict[tuple[str, str], tuple | dict | None] = {}
        self._month_of_day: dict[int, int] = {}

    def run(self, readings: Sequence[Reading], origin: str,
            state: SeriesState | None) -> list[int | None]:
        results: list[int | None] = [None] * len(readings)
        for series in series_of(readings, origin):
            key = (series.element, series.unit)
            plan = self._plans[key] if key in self._plans else self._plan(key)
            if plan is None:
                continue
            if plan.__class__ is dict:
                flags = [None if v is None else _judge(v, plan[self._month(t)])
                         for t, v in zip(series.times, series.values)]
            else:
                flags = _judge_all(series.values, plan)
            series.scatter(results, flags)
        return results

    def _plan(self, key: tuple[str, str]) -> tuple | dict | None:
        element, unit = key
        limits = self.settings.limits_for(element)
        conversion = None if limits is None else to_unit(unit, limits.unit)
        plan = None
        if conversion is not None:
            if limits.months:
                plan = {month: _bounds(conversion, limits.for_month(month))
                        for month in range(1, 13)}
                if all(bounds is None for bounds in plan.values()):
                    plan = None
            else:
                plan = _bounds(conversion, limits.for_month(0))
        self._plans[key] = plan
        return plan


    def _month(self, observed_at: int) -> int:
        day = observed_at // _DAY_US
        month = self._month_of_day.get(day)
        if month is None:
            month = self._month_of_day[day] = (_EPOCH_DATE + timedelta(days=day)).month
        return month


def _judge_all(values: list, bounds: tuple) -> list[int | None]:
    lo_err, hi_err, lo_sus, hi_sus = bounds
    if None not in values and values:
        # the usual case, at C speed: everything inside the climatological range
        if min(values) >= lo_sus and max(values) <= hi_sus:
            return [QC_GOOD] * len(values)
    return [None if v is None else _judge(v, bounds) for v in values]


def _judge(value: float, bounds: tuple | None) -> int | None:
    if bounds is None:
        return None
    lo_err, hi_err, lo_sus, hi_sus = bounds
    if value < lo_err or value > hi_err:
        return QC_ERRONEOUS
    if value < lo_sus or value > hi_sus:
        return QC_SUSPECT
    return QC_GOOD


def _bounds(conversion: tuple[float, float], limits) -> tuple | None:
    """The limits turned into the reading's unit, so values need no conversion."""
    raw = (limits.min, limits.max, limits.suspect_min, limits.suspect_max)
    if all(b is None for b in raw):
        return None
    factor, offset = conversion  # every known conversion has a positive factor
    lo_err, hi_err, lo_sus, hi_sus = (
        (-_INF if i % 2 == 0 else _INF) if b is None else (b - offset) / factor
        for i, b in enumerate(raw))
    return lo_err, hi_err, max(lo_sus, lo_err), min(hi_sus, hi_err)


@hookimpl
def obslink_register_qc_checks(registry):
    registry.add_qc_check(RangeCheck)
