"""Default QC limits for the element vocabulary, and reading a station's overrides.

Physical limits (``min``/``max``) bound what a sensor can report at all; climatological
limits (``suspect_min``/``suspect_max``) bound what is plausible and are what a station
overrides, per month where its climate asks for it. Step and persistence defaults follow the
orders of magnitude WMO guidance gives for one-minute AWS data (WMO-No. 8, WMO-No. 1269);
they are starting points, meant to be tuned per station.
Elements with no default (water level, whose datum is the station's own) are checked only
where a station config gives limits. The table is rendered in docs/qc.md.
"""

from __future__ import annotations

import difflib
from dataclasses import replace
from typing import Any

from obslink.plugins.qc import ElementLimits, MonthLimits, QCSettings
from obslink.plugins.vocabulary import ELEMENTS

L = ElementLimits
HOUR = 3600
DEFAULT_LIMITS: dict[str, ElementLimits] = {
    "air_temperature": L("degC", -80, 60, -60, 50, step_max=3, persistence_window_s=HOUR,
                         persistence_min_variation=0.1),
    "dew_point_temperature": L("degC", -80, 40, -65, 35, step_max=2,
                               persistence_window_s=HOUR, persistence_min_variation=0.1),
    "relative_humidity": L("%", 0, 104, 1, 100, step_max=10, persistence_window_s=HOUR,
                           persistence_min_variation=1),
    "air_pressure": L("hPa", 500, 1100, 600, 1080, step_max=0.5, persistence_window_s=HOUR,
                      persistence_min_variation=0.1),
    "sea_level_pressure": L("hPa", 850, 1090, 900, 1080, step_max=0.5,
                            persistence_window_s=HOUR, persistence_min_variation=0.1),
    "wind_speed": L("m/s", 0, 75, None, 50, step_max=20),
    "wind_speed_max": L("m/s", 0, 113, None, 75),
    "wind_direction": L("deg", 0, 360),
    "precipitation_amount": L("mm", 0, 2000, None, 300),
    "solar_radiation": L("W/m2", -20, 1500, 0, 1400, step_max=800),
    "solar_radiation_total": L("MJ/m2", 0, 50, None, 40),
    "sunshine_duration": L("min", 0, 1440),
    "visibility": L("m", 0, 100_000),
    "soil_temperature": L("degC", -60, 80, -50, 70),
    "soil_moisture": L("m3/m3", 0, 1, None, 0.8),
    "water_temperature": L("degC", -5, 50, -2, 40),
    "snow_depth": L("cm", 0, 2000, None, 800),
    "pm2_5": L("ug/m3", None, 5000, 0, 1000),
    "pm10": L("ug/m3", None, 10000, 0, 2000),
    "tsp": L("ug/m3", None, 20000, 0, 5000),
    "so2": L("mg/m3", None, None, 0, None),
    "no2": L("mg/m3", None, None, 0, None),
    "no": L("mg/m3", None, None, 0, None),
    "nox": L("mg/m3", None, None, 0, None),
    "co": L("mg/m3", None, None, 0, None),
    "o3": L("mg/m3", None, None, 0, None),
    "vocs": L("mg/m3", None, None, 0, None),
    "oxygen": L("%", 0, 100, None, 21),
    "noise_level": L("dB(A)", 0, 194, 20, 140),
    "cod": L("mg/L", None, None, 0, None),
    "nh3_n": L("mg/L", None, None, 0, None),
    "ph": L("1", 0, 14, 4, 11),
    "dissolved_oxygen": L("mg/L", 0, 50, None, 20),
    "conductivity": L("uS/cm", 0, 200_000),
    "turbidity": L("NTU", 0, 10_000),
    "total_nitrogen": L("mg/L", None, None, 0, None),
    "total_phosphorus": L("mg/L", None, None, 0, None),
    "battery_voltage": L("V", 0, 60),
    "logger_temperature": L("degC", -60, 85, -45, 70),
}
del L

RANGE_KEYS = ("min", "max", "suspect_min", "suspect_max")
ELEMENT_KEYS = set(RANGE_KEYS) | {"step_max", "step_interval_s", "persistence_window_s",
                                  "persistence_min_variation", "months"}
QC_KEYS = {"checks", "limits"}


def default_settings() -> QCSettings:
    return QCSettings(dict(DEFAULT_LIMITS))


def read_qc_section(table: Any, installed_checks: set[str],
                    prefix: str = "qc.") -> tuple[QCSettings, list[str]]:
    """A station's ``[qc]`` table on top of the defaults, and every problem with its key
    path. Problems leave the default in place, so a caller may still show what it has."""
    problems: list[str] = []
    fail = lambda key, message: problems.append(f"{prefix}{key}: {message}")  # noqa: E731
    if not isinstance(table, dict):
        problems.append(f"{prefix.rstrip('.')}: must be a table ([qc])")
        return default_settings(), problems
    for key in table:
        if key not in QC_KEYS:
            fail(key, f"unknown key; known keys: {', '.join(sorted(QC_KEYS))}")
    checks = table.get("checks")
    if checks is not None:
        if not isinstance(checks, list) or not all(isinstance(c, str) for c in checks):
            fail("checks", "must be a list of check names, e.g. [\"range\", \"step\"]")
            checks = None
        else:
            for name in checks:
                if name not in installed_checks:
                    fail("checks", f"{name!r} is not an installed QC check; installed: "
                         f"{', '.join(sorted(installed_checks))}")
            checks = tuple(c for c in checks if c in installed_checks)
    limits = dict(DEFAULT_LIMITS)
    overrides = table.get("limits", {})
    if not isinstance(overrides, dict):
        fail("limits", "must be a table of elements: [qc.limits.air_temperature]")
        overrides = {}
    for element, values in overrides.items():
        key = f"limits.{element}"
        if element not in ELEMENTS:
            close = difflib.get_close_matches(element, ELEMENTS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            fail(key, f"{element!r} is not in the element vocabulary; {hint}see "
                 "docs/elements.md")
            continue
        if not isinstance(values, dict):
            fail(key, "must be a table of limits (min, max, suspect_min, …)")
            continue
        base = limits.get(element) or ElementLimits(ELEMENTS[element][0])
        limits[element] = _element_limits(base, values, key, fail)
    return QCSettings(limits, checks), problems


def _element_limits(base: ElementLimits, values: dict, key: str, fail) -> ElementLimits:
    changes: dict[str, Any] = {}
    for name, value in values.items():
        if name not in ELEMENT_KEYS:
            close = difflib.get_close_matches(name, ELEMENT_KEYS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else \
                f"known keys: {', '.join(sorted(ELEMENT_KEYS))}"
            fail(f"{key}.{name}", f"unknown key; {hint}")
        elif name == "months":
            changes["months"] = _months(value, f"{key}.months", fail)
        elif name in ("step_interval_s", "persistence_window_s"):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                fail(f"{key}.{name}", f"must be a whole number of seconds > 0, not {value!r}")
            else:
                changes[name] = value
        elif not _is_number(value):
            fail(f"{key}.{name}", f"must be a number in {base.unit}, not {value!r}")
        elif name in ("step_max", "persistence_min_variation") and value < 0:
            fail(f"{key}.{name}", f"must not be negative, not {value!r}")
        else:
            changes[name] = float(value)
    merged = replace(base, **changes)
    _check_order(MonthLimits(merged.min, merged.max, merged.suspect_min, merged.suspect_max),
                 key, fail, merged.unit)
    for month, own in merged.months.items():
        _check_order(merged.for_month(month), f"{key}.months.{month}", fail, merged.unit)
    if (merged.persistence_window_s is None) != (merged.persistence_min_variation is None):
        fail(key, "persistence_window_s and persistence_min_variation go together; set both "
             "(or neither)")
    return merged


def _months(value: Any, key: str, fail) -> dict[int, MonthLimits]:
    months: dict[int, MonthLimits] = {}
    if not isinstance(value, dict):
        fail(key, 'must be a table of months: [….months.1] for January … "12"')
        return months
    for month, limits in value.items():
        where = f"{key}.{month}"
        if not (str(month).isdigit() and 1 <= int(month) <= 12):
            fail(where, "months are numbered 1 (January) to 12 (December)")
            continue
        if not isinstance(limits, dict):
            fail(where, "must be a table of min, max, suspect_min, suspect_max")
            continue
        fields = {}
        for name, number in limits.items():
            if name not in RANGE_KEYS:
                fail(f"{where}.{name}", f"a month sets only {', '.join(RANGE_KEYS)}")
            elif not _is_number(number):
                fail(f"{where}.{name}", f"must be a number, not {number!r}")
            else:
                fields[name] = float(number)
        months[int(month)] = MonthLimits(**fields)
    return months


def _check_order(limits: MonthLimits, key: str, fail, unit: str) -> None:
    """min <= suspect_min <= suspect_max <= max, for whichever of them are set."""
    chain = [(name, getattr(limits, name)) for name in ("min", "suspect_min", "suspect_max",
                                                        "max")]
    chain = [(name, value) for name, value in chain if value is not None]
    for (low_name, low), (high_name, high) in zip(chain, chain[1:]):
        if low > high:
            fail(key, f"{low_name} {low:g} is above {high_name} {high:g} ({unit}); limits "
                 "must satisfy min <= suspect_min <= suspect_max <= max")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        value == value and abs(value) != float("inf")


def limits_table_markdown(limits: dict[str, ElementLimits] = DEFAULT_LIMITS) -> str:
    """The default limits as the Markdown table in docs/qc.md (a test keeps them equal)."""
    show = lambda v: "" if v is None else f"{v:g}"  # noqa: E731
    lines = ["| element | unit | min | max | suspect_min | suspect_max | step_max | "
             "persistence |", "|---|---|---|---|---|---|---|---|"]
    for element, l in limits.items():
        step = "" if l.step_max is None else f"{l.step_max:g} per {l.step_interval_s} s"
        flat = "" if l.persistence_window_s is None else \
            f"< {l.persistence_min_variation:g} over {l.persistence_window_s // 60} min"
        lines.append(f"| `{element}` | {l.unit} | {show(l.min)} | {show(l.max)} | "
                     f"{show(l.suspect_min)} | {show(l.suspect_max)} | {step} | {flat} |")
    return "\n".join(lines)
