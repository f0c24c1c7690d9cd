"""QC check ``consistency``: readings of one time (and period) that contradict each other.

Rules (values compared in the vocabulary's units, docs/qc.md):
- air_temperature_min <= air_temperature <= air_temperature_max, and min <= max;
- dew_point_temperature <= air_temperature + 0.1 degC (the margin absorbs rounding);
- wind_speed <= wind_speed_max; a calm (wind_speed 0) has no direction (wind_direction 0);
- pm2_5 <= pm10 <= tsp;
- precipitation_amount is never negative (erroneous; the other rules give suspect).
A rule flags every reading it involves; a reading no rule could be applied to is not checked.
"""

from __future__ import annotations

from typing import Sequence

from obslink.plugins.qc import QCCheck, Series, SeriesState, series_of, to_unit
from obslink.plugins import hookimpl
from obslink.plugins.vocabulary import ELEMENTS
from obslink.readings import QC_ERRONEOUS, QC_GOOD, QC_SUSPECT, Reading

# (lower element, higher element, margin): lower <= higher + margin
ORDERED_PAIRS = (
    ("air_temperature_min", "air_temperature", 0.0),
    ("air_temperature", "air_temperature_max", 0.0),
    ("air_temperature_min", "air_temperature_max", 0.0),
    ("dew_point_temperature", "air_temperature", 0.1),
    ("wind_speed", "wind_speed_max", 0.0),
    ("pm2_5", "pm10", 0.0),
    ("pm10", "tsp", 0.0),
)
CALM = ("wind_speed", "wind_direction")
NEVER_NEGATIVE = ("precipitation_amount",)
INVOLVED = {e for pair in ORDERED_PAIRS for e in pair[:2]} | set(NEVER_NEGATIVE) | set(CALM)


class ConsistencyCheck(QCCheck):
    name = "consistency"
    summary = "readings of the same time that contradict each other (Tmin <= T <= Tmax, …)"

    def __init__(self, settings) -> None:
        super().__init__(settings)
        self._conversions: dict[tuple[str, str], tuple[float, float] | None] = {}

    def run(self, readings: Sequence[Reading], origin: str,
            state: SeriesState | None) -> list[int | None]:
        results: list[int | None] = [None] * len(readings)
        # element -> [(series, its values in the vocabulary's unit)]
        involved: dict[str, list[tuple[Series, list]]] = {}
        for series in series_of(readings, origin):
            if series.element in INVOLVED:
                values = self._in_vocabulary_unit(series)
                if values is not None:
                    involved.setdefault(series.element, []).append((series, values))
        if not involved:
            return results
        rules = [(low, high, margin, False) for low, high, margin in ORDERED_PAIRS] + [
            (CALM[0], CALM[1], 0.0, True)]
        for lower, higher, margin, calm in rules:
            for a, a_values in involved.get(lower, ()):
                for b, b_values in involved.get(higher, ()):
                    if a.period_s == b.period_s and a.times == b.times:
                        _judge_aligned(a, a_values, b, b_values, margin, calm, results)
                    else:
                        _judge_by_time(a, a_values, b, b_values, margin, calm, results)
        for element in NEVER_NEGATIVE:
            for series, values in involved.get(element, ()):
                if values and None not in values and min(values) >= 0:
                    flags = [QC_GOOD] * len(values)  # the usual case, at C speed
                else:
                    flags = [None if v is None else (QC_ERRONEOUS if v < 0 else QC_GOOD)
                             for v in values]
                _worsen_series(series, flags, results)
        return results

    def _in_vocabulary_unit(self, series: Series) -> list | None:
        key = (series.element, series.unit)
        if key not in self._conversions:
            self._conversions[key] = to_unit(series.unit, ELEMENTS[series.element][0])
        conversion = self._conversions[key]
        if conversion is None:
            return None
        factor, offset = conversion
        if factor == 1.0 and offset == 0.0:
            return series.values
        return [None if v is None else v * factor + offset for v in series.values]


def _violates(low: float, high: float, margin: float, calm: bool) -> bool:
    return (low == 0 and high != 0) if calm else low > high + margin


def _judge_aligned(a: Series, a_values: list, b: Series, b_values: list, margin: float,
                   calm: bool, results: list) -> None:
    """Two series with the same times and period: reading k of one goes with reading k of
    the other."""
    if None not in a_values and None not in b_values and (
            (0 not in a_values) if calm else
            all(map(float.__le__, map(float, a_values), [v + margin for v in b_values]))):
        flags = [QC_GOOD] * len(a_values)  # the usual case: nothing to contradict
    else:
        flags = [None if x is None or y is None else (
            QC_SUSPECT if _violates(x, y, margin, calm) else QC_GOOD)
            for x, y in zip(a_values, b_values)]
    _worsen_series(a, flags, results)
    _worsen_series(b, flags, results)


def _judge_by_time(a: Series, a_values: list, b: Series, b_values: list, margin: float,
                   calm: bool, results: list) -> None:
    """Readings paired by observed time and period, for batches in no particular order."""
    partners: dict[tuple, list[tuple[int, float]]] = {}
    if a.period_s != b.period_s:
        return
    for j, t, y in zip(b.indices, b.times, b_values):
        if y is not None:
            partners.setdefault(t, []).append((j, y))
    for i, t, x in zip(a.indices, a.times, a_values):
        if x is None:
            continue
        for j, y in partners.get(t, ()):
            flag = QC_SUSPECT if _violates(x, y, margin, calm) else QC_GOOD
            _worsen(results, i, flag)
            _worsen(results, j, flag)


def _worsen_series(series: Series, flags: list, results: list) -> None:
    indices = series.indices
    if indices.__class__ is range and results[indices.start:indices.stop:indices.step].count(
            None) == len(indices):
        series.scatter(results, flags)  # no other rule judged these readings yet
        return
    for i, flag in zip(indices, flags):
        if flag is not None:
            _worsen(results, i, flag)


def _worsen(results: list[int | None], i: int, flag: int) -> None:
    current = results[i]
    if current is None or flag > current:
        results[i] = flag


@hookimpl
def obslink_register_qc_checks(registry):
    registry.add_qc_check(ConsistencyCheck)
