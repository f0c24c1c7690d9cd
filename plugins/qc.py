"""The contract between obslink and a QC check (docs/qc.md).

A check looks at the readings of one commit (a decoded chunk at the agent, a batch at the
collector) and returns, per reading, ``None`` when it did not apply (no limits for the
element, no history yet, a missing value) or a flag on the scale below. It never changes a
value. Checks that need history (step, persistence) keep it in a :class:`SeriesState`,
which the agent commits with the readings, so a restart neither forgets nor repeats it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Callable, ClassVar, Sequence

from obslink.plugins.units import conversion
from obslink.readings import QC_ERRONEOUS, QC_GOOD, QC_SUSPECT, Reading, now_us

__all__ = ["QCCheck", "ElementLimits", "QCSettings", "SeriesState", "TimeLimits", "series_key",
           "series_of", "QC_GOOD", "QC_SUSPECT", "QC_ERRONEOUS", "to_unit"]


@dataclass(frozen=True, slots=True)
class MonthLimits:
    min: float | None = None
    max: float | None = None
    suspect_min: float | None = None
    suspect_max: float | None = None


@dataclass(frozen=True, slots=True)
class ElementLimits:
    """Limits for one element, in ``unit``. ``None`` means "no such limit"."""

    unit: str
    min: float | None = None  # physical: outside is erroneous (2)
    max: float | None = None
    suspect_min: float | None = None  # climatological: outside is suspect (1)
    suspect_max: float | None = None
    step_max: float | None = None  # largest plausible change between consecutive readings …
    step_interval_s: int = 60  # … no more than this far apart
    persistence_window_s: int | None = None  # a flat line this long is suspect …
    persistence_min_variation: float | None = None  # … unless it varies by more than this
    months: dict[int, MonthLimits] = field(default_factory=dict)  # 1 = January

    def for_month(self, month: int) -> MonthLimits:
        """The range limits in force in ``month``: the month's own where it sets them."""
        own = self.months.get(month)
        if own is None:
            return MonthLimits(self.min, self.max, self.suspect_min, self.suspect_max)
        pick = lambda mine, base: base if mine is None else mine  # noqa: E731
        return MonthLimits(pick(own.min, self.min), pick(own.max, self.max),
                           pick(own.suspect_min, self.suspect_min),
                           pick(own.suspect_max, self.suspect_max))


@dataclass(frozen=True)
class TimeLimits:
    """How far an observation time may be from the present before the ``time`` check
    flags it: ahead (erroneous: no instrument observes the future) and behind (suspect:
    a clock set wrong, or an archive loaded long after)."""

    max_future_s: int = 600
    # ten years: a logger clock reset to its epoch (2000, 1990) is caught; an archive loaded
    # months late is not
    max_past_s: int = 315_576_000


@dataclass(frozen=True)
class QCSettings:
    """What the checks run with: the limits per element, and which checks run."""

    limits: dict[str, ElementLimits]
    checks: tuple[str, ...] | None = None  # None: every installed check
    time: TimeLimits = field(default_factory=TimeLimits)
    # The present (µs since the epoch, UTC) as far as it is known, or None when no clock
    # can be trusted: the agent's follows its clock state (obslink.agent.clock).
    now: Callable[[], int | None] = now_us

    def limits_for(self, element: str) -> ElementLimits | None:
        """An element's limits; ``x_max``/``x_min`` extremes fall back on ``x``'s range."""
        found = self.limits.get(element)
        if found is None and element.endswith(("_max", "_min")):
            base = self.limits.get(element[:-4])
            if base is not None:
                found = ElementLimits(base.unit, base.min, base.max, base.suspect_min,
                                      base.suspect_max, months=base.months)
        return found


class SeriesState:
    """History a stateful check keeps per series, JSON-able, committed with the readings.

    Reads see what was committed plus what this run wrote; ``pending`` holds this run's
    writes until the caller has made them durable and calls ``commit``.
    """

    def __init__(self, committed: dict[str, Any] | None = None) -> None:
        self.committed: dict[str, Any] = committed or {}
        self.pending: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        value = self.pending.get(key)
        return self.committed.get(key) if value is None else value

    def __setitem__(self, key: str, value: Any) -> None:
        self.pending[key] = value

    def commit(self) -> None:
        self.committed.update(self.pending)
        self.pending = {}

    def rollback(self) -> None:
        self.pending = {}


def series_key(origin: str, reading: Reading) -> str:
    """One time series: a source's field of one element over one aggregation period."""
    return ReadingBatch._key(origin, _SERIES_FIELDS(reading))


class Series:
    """The readings of one series within a batch: their indices, times and values."""

    __slots__ = ("key", "element", "unit", "period_s", "indices", "times", "values")

    def __init__(self, key: str, fields: tuple, indices, times: list[int],
                 values: list) -> None:
        self.key = key
        self.element, self.unit, _source_field, self.period_s = fields
        self.indices = indices  # a range (record-major input) or a list
        self.times, self.values = times, values

    def scatter(self, results: list, flags: list) -> None:
        """Put one flag per reading of the series into the batch-aligned ``results``."""
        indices = self.indices
        if isinstance(indices, range):
            results[indices.start:indices.stop:indices.step] = flags
        else:
            for i, flag in zip(indices, flags):
                results[i] = flag


# element, unit, source_field, period_s: a unit changed by a new logger program starts a
# separate group (its values are converted differently), the same history series
_SERIES_FIELDS = itemgetter(1, 3, 4, 7)


class ReadingBatch(list):
    """The readings one run of the checks sees, split into series once for every check.

    Loggers write record after record with the same fields in the same order; then every
    series is a stride of the batch, and checks work on slices at C speed.
    """

    _columns: tuple | None = None
    _series: list[Series] | None = None
    _origin: str | None = None

    def columns(self) -> tuple:
        """The readings transposed: (times, elements, values, units, source fields, source
        flags, qc, periods, …), each a tuple aligned with the readings."""
        if self._columns is None:
            self._columns = tuple(zip(*self)) if self else ((),) * len(Reading._fields)
        return self._columns

    def series(self, origin: str) -> list[Series]:
        if self._series is None or self._origin != origin:
            self._series = self._split(origin)
            self._origin = origin
        return self._series

    def _split(self, origin: str) -> list[Series]:
        count = len(self)
        if not count:
            return []
        times, elements, values, units, fields, _flags, _qc, periods, *_ = self.columns()
        by_key = (elements, units, fields, periods)  # what makes a series (_SERIES_FIELDS)
        try:
            stride = fields.index(fields[0], 1)
        except ValueError:
            stride = count
        if count % stride == 0 and all(column[stride:] == column[:-stride]
                                       for column in by_key):
            keys = list(zip(elements[:stride], units[:stride], fields[:stride],
                            periods[:stride]))
            if len(set(keys)) == stride:
                record_times = list(times[::stride])
                shared = all(times[j::stride] == times[::stride] for j in range(1, stride))
                # when every field of a record has the record's time, the series share one
                # list of times (checks may then work on it once)
                return [Series(self._key(origin, key), key, range(j, count, stride),
                               record_times if shared else list(times[j::stride]),
                               list(values[j::stride]))
                        for j, key in enumerate(keys)]
        groups: dict[tuple, list[int]] = {}
        for i, key in enumerate(zip(*by_key)):
            found = groups.get(key)
            if found is None:
                groups[key] = [i]
            else:
                found.append(i)
        return [Series(self._key(origin, key), key, found, [times[i] for i in found],
                       [values[i] for i in found])
                for key, found in groups.items()]

    @staticmethod
    def _key(origin: str, key: tuple) -> str:
        element, _unit, source_field, period_s = key
        return f"{origin}|{element}|{source_field}|{period_s or ''}"


def series_of(readings: Sequence[Reading], origin: str) -> list[Series]:
    """The series of a batch; computed once per batch when the runner passes a
    ReadingBatch, as it does."""
    if not isinstance(readings, ReadingBatch):
        readings = ReadingBatch(readings)
    return readings.series(origin)


def to_unit(unit: str, target: str) -> tuple[float, float] | None:
    """(factor, offset) turning a value in ``unit`` into ``target``; None if unknown. The
    agent stores readings in their elements' units already (obslink.plugins.units); this
    serves limits a station states in another unit, and readings from older agents."""
    found = conversion(unit, target)
    return None if found is None else (float(found[0]), float(found[1]))


class QCCheck:
    """Base class of QC checks. Subclasses set ``name`` and ``summary`` and implement run.

    One instance serves one agent (or the collector) for its lifetime; it gets the
    station's :class:`QCSettings` at construction.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    stateful: ClassVar[bool] = False  # True: run() gets a SeriesState to keep history in

    def __init__(self, settings: QCSettings) -> None:
        self.settings = settings

    def run(self, readings: Sequence[Reading], origin: str,
            state: SeriesState | None) -> list[int | None]:
        """One entry per reading: None (did not apply) or QC_GOOD/QC_SUSPECT/QC_ERRONEOUS.

        ``origin`` names where the readings came from (the source at the agent), so
        stateful checks keep series of different sources apart. Must not raise for any
        reading; a reading whose value is None is already flagged missing.
        """
        raise NotImplementedError


class SeriesHistoryCheck(QCCheck):
    """A check that judges each series against its own history (step, persistence).

    Subclasses say what they need of an element's limits (:meth:`plan`) and how they judge a
    series' new readings given what they kept of it (:meth:`judge`).
    """

    stateful = True

    def __init__(self, settings: QCSettings) -> None:
        super().__init__(settings)
        self._plans: dict[tuple[str, str], Any] = {}  # (element, unit) -> plan or None

    def plan(self, limits: ElementLimits, factor: float) -> Any:
        """What judge() needs, from limits in the element's unit and the factor turning
        the reading's unit into it; None when the check does not apply to the element."""
        raise NotImplementedError

    def judge(self, times: list[int], values: list, plan: Any,
              history: Any) -> tuple[list[int | None], Any]:
        """Flags for the readings of one series, and the history to keep (JSON-able)."""
        raise NotImplementedError

    def run(self, readings: Sequence[Reading], origin: str,
            state: SeriesState | None) -> list[int | None]:
        results: list[int | None] = [None] * len(readings)
        if state is None:
            return results
        for series in series_of(readings, origin):
            key = (series.element, series.unit)
            plan = self._plans[key] if key in self._plans else self._make_plan(key)
            if plan is None:
                continue
            history = state.get(series.key)
            flags, newest = self.judge(series.times, series.values, plan, history)
            series.scatter(results, flags)
            if newest is not None and newest != history:
                state[series.key] = newest
        return results

    def _make_plan(self, key: tuple[str, str]) -> Any:
        element, unit = key
        limits = self.settings.limits_for(element)
        conversion = None if limits is None else to_unit(unit, limits.unit)
        plan = None if conversion is None else self.plan(limits, conversion[0])
        self._plans[key] = plan
        return plan
