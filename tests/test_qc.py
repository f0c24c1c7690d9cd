"""QC checks: boundaries of every check, the runner's folding and history, config checks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from obslink.plugins.qc import ElementLimits, MonthLimits, QCSettings
from obslink.plugins.qc_consistency import ConsistencyCheck
from obslink.plugins.qc_limits import DEFAULT_LIMITS, default_settings, read_qc_section
from obslink.plugins.qc_persistence import PersistenceCheck
from obslink.plugins.qc_range import RangeCheck
from obslink.plugins.qc_runner import QCRunner
from obslink.plugins.qc_source_flags import SourceFlagCheck
from obslink.plugins.qc_step import StepCheck
from obslink.plugins.registry import load_registry
from obslink.plugins.vocabulary import ELEMENTS
from obslink.readings import Reading

MINUTE = 60_000_000
T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
JULY = 1_782_864_000_000_000  # 2026-07-01T00:00:00Z


def r(element, value, unit=None, t=T0, field=None, flag=None, period=None):
    unit = unit or ELEMENTS.get(element, ("1",))[0]
    return Reading(t, element, value, unit, field or element, flag, 9, period)


def run(check_class, readings, settings=None, state=None):
    from obslink.plugins.qc import SeriesState

    check = check_class(settings or default_settings())
    return check.run(readings, "test", state if state is not None else SeriesState())


# --- range -------------------------------------------------------------------------------------

@pytest.mark.parametrize("value,expected", [
    (-90.0, 1),  # at the physical minimum: inside it, but below suspect_min
    (-90.01, 2), (60.0, 1), (60.01, 2), (-60.0, 0), (50.0, 0), (50.01, 1), (-60.01, 1),
    (20.0, 0), (-89.2, 1)])  # the world's lowest, at Vostok: suspect, not impossible
def test_range_air_temperature_boundaries(value, expected):
    assert run(RangeCheck, [r("air_temperature", value)]) == [expected]


def test_range_converts_units_and_skips_unknown_units_and_elements():
    readings = [r("air_pressure", 101.3, "kPa"), r("air_pressure", 49.0, "kPa"),
                r("air_temperature", 300.0, "K"), r("air_temperature", 20.0, "furlong"),
                r("water_level", 3.2), r("w99999", 1.0, "mg/L"), r("air_temperature", None)]
    assert run(RangeCheck, readings) == [0, 2, 0, None, 0, None, None]


def test_range_month_limits_apply_in_their_month_only():
    limits = dict(DEFAULT_LIMITS)
    limits["air_temperature"] = ElementLimits(
        "degC", -80, 60, -60, 50, months={1: MonthLimits(suspect_max=15.0)})
    settings = QCSettings(limits)
    january, july = r("air_temperature", 16.0), r("air_temperature", 16.0, t=JULY)
    assert run(RangeCheck, [january, july], settings) == [1, 0]
    assert run(RangeCheck, [r("air_temperature", 15.0)], settings) == [0]


def test_range_extremes_use_the_base_elements_range():
    assert run(RangeCheck, [r("air_temperature_max", 61.0, "degC"),
                            r("pm2_5_max", 1500.0, "ug/m3")]) == [2, 1]


# --- step --------------------------------------------------------------------------------------

def series(element, values, step_us=MINUTE, unit=None):
    return [r(element, v, unit, t=T0 + i * step_us) for i, v in enumerate(values)]


def test_step_boundary_and_interval():
    # air temperature: at most 3 degC between readings <= 60 s apart
    assert run(StepCheck, series("air_temperature", [10.0, 13.0, 16.01, 16.0])) == \
        [None, 0, 1, 0]
    # two minutes apart: beyond the step interval, not judged
    assert run(StepCheck, series("air_temperature", [10.0, 20.0], 2 * MINUTE)) == [None, None]


def test_step_history_carries_over_calls_and_ignores_older_readings():
    from obslink.plugins.qc import SeriesState

    state = SeriesState()
    first = series("air_temperature", [10.0])
    assert run(StepCheck, first, state=state) == [None]
    state.commit()
    later = [r("air_temperature", 14.0, t=T0 + MINUTE), r("air_temperature", 99.0, t=T0)]
    assert run(StepCheck, later, state=state) == [1, None]


def test_step_in_another_unit_scales_the_change():
    # 0.06 kPa = 0.6 hPa > 0.5 hPa
    assert run(StepCheck, series("air_pressure", [101.30, 101.36, 101.40], unit="kPa")) == \
        [None, 1, 0]


# --- persistence -------------------------------------------------------------------------------

def test_persistence_flags_a_flat_hour_and_resets_when_it_moves():
    values = [10.0] * 61 + [10.2, 10.2]
    results = run(PersistenceCheck, series("air_temperature", values))
    assert results[:60] == [0] * 60  # 0 .. 59 minutes flat
    assert results[60] == 1  # 60 minutes flat
    assert results[61:] == [0, 0]  # it moved by 0.2 > 0.1: a new run


def test_persistence_variation_at_the_threshold_is_still_flat():
    values = [10.0, 10.1] * 31
    assert run(PersistenceCheck, series("air_temperature", values))[-1] == 1


def test_persistence_gap_longer_than_the_window_starts_a_new_run():
    readings = series("air_temperature", [10.0] * 30) + [
        r("air_temperature", 10.0, t=T0 + 200 * MINUTE)]
    assert run(PersistenceCheck, readings)[-1] == 0


def test_persistence_is_off_for_elements_without_a_window():
    assert set(run(PersistenceCheck, series("wind_speed", [0.0] * 120))) == {None}


# --- consistency -------------------------------------------------------------------------------

def test_temperature_order():
    good = [r("air_temperature_min", 5.0), r("air_temperature", 5.0),
            r("air_temperature_max", 5.0)]
    assert run(ConsistencyCheck, good) == [0, 0, 0]
    bad = [r("air_temperature_min", 5.0), r("air_temperature", 4.9),
           r("air_temperature_max", 9.0)]
    assert run(ConsistencyCheck, bad) == [1, 1, 0]


@pytest.mark.parametrize("dew_point,expected", [(20.1, 0), (20.11, 1), (-5.0, 0)])
def test_dew_point_margin(dew_point, expected):
    assert run(ConsistencyCheck, [r("dew_point_temperature", dew_point),
                                  r("air_temperature", 20.0)]) == [expected, expected]


def test_calm_wind_has_no_direction_and_gust_at_least_mean():
    assert run(ConsistencyCheck, [r("wind_speed", 0.0), r("wind_direction", 0.0)]) == [0, 0]
    assert run(ConsistencyCheck, [r("wind_speed", 0.0), r("wind_direction", 90.0)]) == [1, 1]
    assert run(ConsistencyCheck, [r("wind_speed", 5.0), r("wind_speed_max", 4.0)]) == [1, 1]


def test_particulates_and_precipitation():
    assert run(ConsistencyCheck, [r("pm2_5", 80.0), r("pm10", 80.0)]) == [0, 0]
    assert run(ConsistencyCheck, [r("pm2_5", 80.001), r("pm10", 80.0)]) == [1, 1]
    # mg/m3 against ug/m3: 0.05 mg/m3 = 50 ug/m3 <= 60 ug/m3
    assert run(ConsistencyCheck, [r("pm2_5", 0.05, "mg/m3"), r("pm10", 60.0)]) == [0, 0]
    assert run(ConsistencyCheck, [r("precipitation_amount", 0.0),
                                  r("precipitation_amount", -0.1, t=T0 + MINUTE)]) == [0, 2]


def test_consistency_compares_only_the_same_time_and_period():
    readings = [r("pm2_5", 90.0), r("pm10", 60.0, t=T0 + MINUTE),
                r("pm10", 60.0, period=3600), r("relative_humidity", 50.0)]
    assert run(ConsistencyCheck, readings) == [None, None, None, None]


# --- source flags ------------------------------------------------------------------------------

@pytest.mark.parametrize("flag,expected", [("N", 0), ("T", 1), ("S", 1), ("D", 2), ("F", 2),
                                           ("M", 2), ("C", 2), ("B", 2), ("NAN", 2),
                                           ("Q", None), (None, None)])
def test_source_flags(flag, expected):
    assert run(SourceFlagCheck, [r("so2", 0.02, flag=flag)]) == [expected]


# --- the runner --------------------------------------------------------------------------------

REGISTRY = load_registry()


def runner(settings=None):
    return QCRunner.from_registry(REGISTRY, settings or default_settings())


def test_runner_folds_the_worst_flag_and_the_masks():
    qc = runner()
    out = qc.annotate([r("air_temperature", 55.0), r("air_temperature", None, t=T0 + 1),
                       r("w01018x", 3.0, "mg/L"), r("so2", 0.1, flag="D")], "src")
    names = qc.names
    bit = lambda *checks: sum(1 << names.index(c) for c in checks)  # noqa: E731
    assert [x.qc for x in out] == [1, 8, 9, 2]
    assert out[0].qc_ran == bit("range", "persistence") and out[0].qc_failed == bit("range")
    assert out[1].qc_ran == 0 and out[2].qc_ran == 0
    assert out[3].qc_failed == bit("source_flags") and out[3].qc_ran == bit("range",
                                                                            "source_flags")


def test_runner_history_is_kept_only_when_committed():
    qc = runner()
    qc.annotate(series("air_temperature", [10.0]), "src")
    qc.rollback_state()  # the outbox transaction failed: as if never seen
    assert qc.annotate([r("air_temperature", 20.0, t=T0 + MINUTE)], "src")[0].qc == 0
    qc.commit_state()
    rows = qc.pending_state() or None
    assert rows is None  # committed: nothing pending
    fresh = runner()
    fresh.load_state([("step", key, text) for key, text in _state_rows(qc, "step")])
    assert fresh.annotate([r("air_temperature", 24.0, t=T0 + 2 * MINUTE)], "src")[0].qc == 1


def _state_rows(qc, check):
    import json

    return [(key, json.dumps(value)) for key, value in qc.states[check].committed.items()]


def test_no_checks_leaves_readings_unchecked():
    qc = runner(QCSettings(dict(DEFAULT_LIMITS), checks=()))
    assert qc.names == [] and qc.annotate([r("air_temperature", 500.0)], "s")[0].qc == 9


elements = st.sampled_from(sorted(DEFAULT_LIMITS) + ["air_temperature_max", "pm2_5_max",
                                                      "x_unknown"])
values = st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False))
readings_strategy = st.lists(st.builds(
    lambda e, v, dt, flag, period: Reading(T0 + dt * 1_000_000, e, v,
                                           DEFAULT_LIMITS.get(e, ElementLimits("1")).unit,
                                           e, flag, 9, period),
    elements, values, st.integers(0, 7200), st.sampled_from([None, "N", "D", "T", "NAN", "?"]),
    st.sampled_from([None, 60, 3600])), max_size=60)


@settings(max_examples=300, deadline=None)
@given(readings_strategy)
def test_qc_never_changes_a_value_time_or_order(readings):
    qc = runner()
    out = qc.annotate(readings, "prop")
    assert [x[:6] + (x.period_s,) for x in out] == [x[:6] + (x.period_s,) for x in readings]
    for x in out:
        assert x.qc in (0, 1, 2, 8, 9)
        assert x.qc_failed & ~x.qc_ran == 0
        assert (x.qc == 8) == (x.value is None)
        assert (x.qc == 9) == (x.value is not None and x.qc_ran == 0)


# --- config ------------------------------------------------------------------------------------

CHECKS = set(REGISTRY.qc_checks)


def test_station_limits_override_defaults_per_month():
    settings, problems = read_qc_section({"limits": {"air_temperature": {
        "suspect_max": 42, "months": {"1": {"suspect_max": 15}}}}}, CHECKS)
    assert problems == []
    limits = settings.limits["air_temperature"]
    assert limits.suspect_max == 42 and limits.min == -90
    assert limits.for_month(1).suspect_max == 15 and limits.for_month(2).suspect_max == 42


@pytest.mark.parametrize("table,expected", [
    ({"limits": {"air_temprature": {"max": 1}}},
     "qc.limits.air_temprature: 'air_temprature' is not in the element vocabulary; did you "
     "mean 'air_temperature'?"),
    ({"limits": {"air_temperature": {"suspect_min": 10, "suspect_max": 5}}},
     "qc.limits.air_temperature: suspect_min 10 is above suspect_max 5"),
    ({"limits": {"air_temperature": {"suspect_max": 70}}},
     "qc.limits.air_temperature: suspect_max 70 is above max 60"),
    ({"limits": {"air_temperature": {"months": {"13": {"max": 1}}}}},
     "qc.limits.air_temperature.months.13: months are numbered 1"),
    ({"limits": {"air_temperature": {"months": {"7": {"suspect_min": 55}}}}},
     "qc.limits.air_temperature.months.7: suspect_min 55 is above suspect_max 50"),
    ({"limits": {"air_temperature": {"step_maxx": 1}}},
     "qc.limits.air_temperature.step_maxx: unknown key; did you mean 'step_max'?"),
    ({"limits": {"air_temperature": {"max": "hot"}}},
     "qc.limits.air_temperature.max: must be a number in degC"),
    ({"limits": {"wind_speed": {"persistence_window_s": 600}}},
     "qc.limits.wind_speed: persistence_window_s and persistence_min_variation go together"),
    ({"checks": ["range", "rnage"]}, "qc.checks: 'rnage' is not an installed QC check"),
    ({"limit": {}}, "qc.limit: unknown key"),
])
def test_inconsistent_or_unknown_limits_are_reported_with_key_paths(table, expected):
    _settings, problems = read_qc_section(table, CHECKS)
    assert any(p.startswith(expected) for p in problems), problems


def test_defaults_are_consistent_and_documented():
    from pathlib import Path

    from obslink.plugins.qc_limits import limits_table_markdown

    for element, limits in DEFAULT_LIMITS.items():
        _settings, problems = read_qc_section({"limits": {element: {}}}, CHECKS)
        assert problems == [], element
    text = (Path(__file__).parent.parent / "docs" / "qc.md").read_text()
    assert limits_table_markdown() in text, "docs/qc.md limits table is out of date"


# --- the fast paths agree with the general ones ------------------------------------------------

RECORD_ELEMENTS = ("air_temperature", "air_temperature_max", "dew_point_temperature",
                   "relative_humidity", "wind_speed", "wind_direction", "precipitation_amount",
                   "pm2_5", "pm10")
values_near_limits = st.one_of(st.none(), st.sampled_from([0.0, -0.2, 20.0, 50.0, 50.01, 61.0]),
                               st.floats(-5, 120, allow_nan=False))


@st.composite
def logger_records(draw):
    """Records as a logger writes them: every element at each time, in column order."""
    step = draw(st.sampled_from([30, 60, 120])) * 1_000_000
    count = draw(st.integers(1, 40))
    flat = draw(st.booleans())  # flat lines exercise persistence
    records = []
    for k in range(count):
        records.append([Reading(T0 + k * step, e, 20.0 if flat and e == "air_temperature"
                                else draw(values_near_limits), ELEMENTS[e][0], e,
                                draw(st.sampled_from([None, None, "N", "D"])), 9)
                        for e in RECORD_ELEMENTS])
    return records


def flags(readings):
    return [(r.qc, r.qc_ran, r.qc_failed) for r in readings]


@settings(max_examples=300, deadline=None)
@given(logger_records(), st.randoms(use_true_random=False))
def test_fast_paths_chunks_and_order_do_not_change_any_flag(records, rng):
    everything = [r for record in records for r in record]
    reference = flags(runner().annotate(everything, "src"))

    for size in (1, rng.randint(2, 8)):  # commits of a few records, history carried over
        chunked, qc = [], runner()
        for first in range(0, len(records), size):
            chunked += qc.annotate([r for record in records[first:first + size]
                                    for r in record], "src")
            qc.commit_state()
        assert flags(chunked) == reference

    odd = Reading(T0, "x_unknown", 1.0, "1", "odd")  # breaks the record-major stride
    assert flags(runner().annotate(everything + [odd], "src"))[:-1] == reference

    shuffled = []  # columns in another order inside each record: the general grouping
    for k, record in enumerate(records):
        order = list(range(len(record)))
        rng.shuffle(order)
        shuffled += [(k * len(record) + i, record[i]) for i in order]
    annotated = runner().annotate([r for _pos, r in shuffled], "src")
    restored = [r for _pos, r in sorted(zip((pos for pos, _r in shuffled), annotated))]
    assert flags(restored) == reference


def test_every_element_has_physical_limits_and_a_source_for_them():
    from obslink.plugins.qc_limits import LIMIT_SOURCES

    settings = default_settings()
    for element in ELEMENTS:
        limits = settings.limits_for(element)
        assert limits is not None and limits.max is not None, element
        assert LIMIT_SOURCES[element.removesuffix("_max").removesuffix("_min")], element


def test_an_ozone_reading_of_63_mg_m3_is_erroneous():
    """A real HJ 212 packet said O3 = 63 mg/m³, and QC called it good."""
    assert run(RangeCheck, [r("o3", 63.0), r("o3", 0.16), r("o3", 1.2)]) == [2, 0, 1]


# --- time ------------------------------------------------------------------------------------

def test_time_flags_readings_from_the_future_and_from_long_ago():
    from dataclasses import replace

    from obslink.plugins.qc_time import TimeCheck

    now = 1_800_000_000_000_000
    settings = replace(default_settings(), now=lambda: now)
    year = 365 * 86_400_000_000
    readings = [r("air_temperature", 1.0, t=now), r("air_temperature", 1.0, t=now + year),
                r("air_temperature", 1.0, t=now - 11 * year),
                r("air_temperature", 1.0, t=now + 300_000_000),  # 5 min: a logger's drift
                # an hour's amount that ends 20 minutes from now
                r("precipitation_amount", 1.0, t=now - 2_400_000_000, period=3600),
                r("air_temperature", None, t=now + year)]
    assert run(TimeCheck, readings, settings) == [None, 2, 1, None, 2, None]
    assert run(TimeCheck, readings[:1] + readings[3:4], settings) == [None, None]
    unknown = replace(settings, now=lambda: None)  # no clock to trust: times not judged
    assert run(TimeCheck, readings, unknown) == [None] * 6
    stricter = replace(settings, time=replace(settings.time, max_future_s=60))
    assert run(TimeCheck, readings[3:4], stricter) == [2]
