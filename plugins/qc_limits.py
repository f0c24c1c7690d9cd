"""Default QC limits for the element vocabulary, where each figure comes from, and reading a
station's overrides.

Physical limits (``min``/``max``) bound what a sensor can report at all; climatological
limits (``suspect_min``/``suspect_max``) bound what is plausible and are what a station
overrides, per month where its climate asks for it. Step and persistence defaults follow the
orders of magnitude WMO guidance gives for one-minute AWS data (WMO-No. 8, WMO-No. 1269);
they are starting points, meant to be tuned per station. Every element has physical limits;
``LIMIT_SOURCES`` says where each figure comes from (instrument ranges, national standards,
records, physics, or obslink's judgement where no standard was found). The table is rendered
in docs/qc.md.

Gases are ambient-air defaults: a pollution-source (stack) station measures the same gases
a thousand times more concentrated and sets its own limits.
"""

from __future__ import annotations

import difflib
from dataclasses import replace
from typing import Any

from obslink.plugins.qc import ElementLimits, MonthLimits, QCSettings, TimeLimits
from obslink.plugins.vocabulary import ELEMENTS

L = ElementLimits
HOUR = 3600
# Ambient gas analysers: HJ 654-2013 sets their standard range at 0-500 nmol/mol (SO2, NO2,
# O3; NO and NOx analysers alike) and 0-50 umol/mol (CO); an analyser may be approved for a
# range at most 4 times wider (40 CFR 53.20(b)). In mg/m3 at 25 degC, 1013.25 hPa (molar
# volume 24.465 L): SO2 1.31, NO2 and NOx (as NO2) 0.94, NO 0.61, O3 0.98, CO 57.2.
DEFAULT_LIMITS: dict[str, ElementLimits] = {
    "air_temperature": L("degC", -90, 60, -60, 50, step_max=3, persistence_window_s=HOUR,
                         persistence_min_variation=0.1),
    "dew_point_temperature": L("degC", -90, 40, -65, 35, step_max=2,
                               persistence_window_s=HOUR, persistence_min_variation=0.1),
    "relative_humidity": L("%", 0, 104, 1, 100, step_max=10, persistence_window_s=HOUR,
                           persistence_min_variation=1),
    "air_pressure": L("hPa", 500, 1100, 600, 1080, step_max=0.5, persistence_window_s=HOUR,
                      persistence_min_variation=0.1),
    "sea_level_pressure": L("hPa", 850, 1090, 900, 1080, step_max=0.5,
                            persistence_window_s=HOUR, persistence_min_variation=0.1),
    "wind_speed": L("m/s", 0, 75, None, 50, step_max=20),
    "wind_speed_max": L("m/s", 0, 115, None, 75),
    "wind_direction": L("deg", 0, 360),
    "precipitation_amount": L("mm", 0, 2000, None, 300),
    "solar_radiation": L("W/m2", -20, 1500, 0, 1400, step_max=800),
    "solar_radiation_total": L("MJ/m2", 0, 50, None, 40),
    "sunshine_duration": L("min", 0, 1440),
    "visibility": L("m", 0, 100_000),
    "soil_temperature": L("degC", -60, 80, -50, 70),
    "soil_moisture": L("m3/m3", 0, 1, None, 0.8),
    "water_level": L("m", -100, 1000),
    "water_temperature": L("degC", -5, 50, -2, 40),
    "snow_depth": L("cm", 0, 2500, None, 800),
    "pm2_5": L("ug/m3", None, 10_000, 0, 1000),
    "pm10": L("ug/m3", None, 10_000, 0, 1000),
    "tsp": L("ug/m3", None, 20_000, 0, 2000),
    "so2": L("mg/m3", None, 5.2, 0, 1.3),
    "no2": L("mg/m3", None, 3.8, 0, 0.94),
    "no": L("mg/m3", None, 2.5, 0, 0.61),
    "nox": L("mg/m3", None, 3.8, 0, 0.94),
    "co": L("mg/m3", None, 230, 0, 57),
    "o3": L("mg/m3", None, 3.9, 0, 0.98),
    "vocs": L("mg/m3", None, 100, 0, 10),
    "hydrocarbons": L("mg/m3", None, 100, 0, 10),
    "dust": L("mg/m3", None, 10_000, 0, 200),
    "oxygen": L("%", 0, 100, None, 21),
    "flue_gas_velocity": L("m/s", 0, 100, None, 40),
    "flue_gas_temperature": L("degC", -40, 1000, None, 300),
    "flue_gas_pressure": L("kPa", -50, 200),
    "flue_gas_humidity": L("%", 0, 100),
    "flue_gas_flow": L("m3/s", 0, 10_000),
    "noise_level": L("dB(A)", 0, 194, 20, 140),
    "cod": L("mg/L", None, 4000, 0, 400),
    "nh3_n": L("mg/L", None, 200, 0, 20),
    "ph": L("1", 0, 14, 4, 11),
    "dissolved_oxygen": L("mg/L", 0, 50, None, 20),
    "conductivity": L("uS/cm", 0, 200_000),
    "turbidity": L("NTU", 0, 10_000),
    "permanganate_index": L("mg/L", None, 1500, 0, 150),
    "total_nitrogen": L("mg/L", None, 200, 0, 20),
    "total_phosphorus": L("mg/L", None, 40, 0, 4),
    "suspended_solids": L("mg/L", None, 100_000, 0, 10_000),
    "wastewater_flow": L("L/s", 0, 100_000),
    "battery_voltage": L("V", 0, 60),
    "logger_temperature": L("degC", -60, 85, -45, 70),
    "radar_peak_power": L("kW", 0, 2000),
    "radar_transmitter_temperature": L("degC", -60, 85, -30, 60),
    "radar_shelter_temperature": L("degC", -60, 85, -20, 45),
    "equipment_alarm_count": L("1", 0, 10_000),
    "equipment_alarm_code": L("1", 0, 2**31 - 1),
}
del L

_CIMO = "WMO-No. 8 (CIMO Guide, 2018) Vol. I Annex 1.A measurement range"
_EXTREMES = "WMO Archive of Weather and Climate Extremes"


def _analyser(standard_range: str, mg_m3: str) -> str:
    return (f"HJ 654-2013 standard range of ambient analysers, {standard_range} ({mg_m3} "
            "mg/m³ at 25 °C): suspect above it; erroneous above 4 times it, the widest "
            "range an analyser may be approved for (40 CFR 53.20(b))")



_GB3838 = ("judgement: suspect above 10 times, erroneous above 100 times the class V limit "
           "of GB 3838-2002 (surface water); wastewater stations set their own")
LIMIT_SOURCES: dict[str, str] = {
    "air_temperature": f"the world's extremes, −89.2 °C (Vostok, 1983) and 56.7 °C "
                       f"(Furnace Creek, 1913; {_EXTREMES}); {_CIMO} −80…+60 °C",
    "dew_point_temperature": "no dew point is above the air temperature's extremes; about "
                             "35 °C is the highest reported (Dhahran, 2003)",
    "relative_humidity": "physics: 100 % at saturation; capacitive sensors read a few % over "
                         f"it near saturation; {_CIMO} 0–100 %",
    "air_pressure": f"{_CIMO} 500–1080 hPa (stations above about 5,500 m set their own)",
    "sea_level_pressure": f"records 870 hPa (Typhoon Tip, 1979) and 1083.8 hPa (Agata, "
                          f"1968; {_EXTREMES})",
    "wind_speed": f"{_CIMO} 0–75 m/s",
    "wind_speed_max": f"the highest gust on record, 113.2 m/s (Barrow Island, 1996; "
                      f"{_EXTREMES})",
    "wind_direction": "degrees from north; 0 is calm in WMO code tables, 360 north",
    "precipitation_amount": f"the highest 24-hour amount on record, 1,825 mm (Foc-Foc, La "
                            f"Réunion, 1966; {_EXTREMES})",
    "solar_radiation": "physics: the solar constant is 1,361 W/m²; cloud edges add for "
                       "moments; thermopiles read a few W/m² below 0 at night",
    "solar_radiation_total": "physics: the daily total at the top of the atmosphere is at "
                             "most about 45–50 MJ/m² (polar summer)",
    "sunshine_duration": "a day has 1,440 minutes",
    "visibility": f"{_CIMO} 10 m–100 km",
    "soil_temperature": "judgement: bare desert soil reaches about 70–80 °C at its surface",
    "soil_moisture": "physics: a volume fraction",
    "water_level": "judgement, wide on purpose: the datum is the station's own gauge zero, so "
                   "a station sets its range",
    "water_temperature": "physics: sea water freezes at about −2 °C; surface waters stay "
                         "below 40 °C (hot springs aside)",
    "snow_depth": f"{_CIMO} 0–25 m",
    "pm2_5": "HJ 653-2013 standard range of particulate monitors 0–1000 µg/m³ (suspect "
             "above it); beta-attenuation monitors offer ranges to 10 mg/m³",
    "pm10": "HJ 653-2013 standard range 0–1000 µg/m³ (suspect above it; dust storms pass "
            "it); beta-attenuation monitors offer ranges to 10 mg/m³",
    "tsp": "judgement: twice PM10's limits, total suspended particles include PM10",
    "so2": _analyser("0–500 nmol/mol", "1.31"), "no2": _analyser("0–500 nmol/mol", "0.94"),
    "no": _analyser("0–500 nmol/mol", "0.61"),
    "nox": _analyser("0–500 nmol/mol", "0.94 as NO2"),
    "co": _analyser("0–50 µmol/mol", "57.2"), "o3": _analyser("0–500 nmol/mol", "0.98"),
    "vocs": "judgement (no standard range found): ambient non-methane hydrocarbons are "
            "well below 10 mg/m³",
    "hydrocarbons": "judgement (no standard range found), as vocs",
    "dust": "judgement (no standard range found): flue dust after any filter is far below "
            "200 mg/m³, unfiltered below 10 g/m³",
    "oxygen": "physics: a fraction; air holds 20.9 %",
    "flue_gas_velocity": "judgement (no standard range found): stacks run at 5–30 m/s",
    "flue_gas_temperature": "judgement (no standard range found): stacks run at 50–250 °C",
    "flue_gas_pressure": "judgement (no standard range found): static pressure in a stack "
                         "is within a few kPa of the atmosphere's",
    "flue_gas_humidity": "physics: a fraction",
    "flue_gas_flow": "judgement (no standard range found): the largest stacks carry a few "
                     "thousand m³/s",
    "noise_level": "physics: 194 dB is the loudest undistorted sound in air at 1 atm; IEC "
                   "61672 sound level meters measure about 20–140 dB",
    "cod": _GB3838 + " (class V: 40 mg/L)",
    "nh3_n": _GB3838 + " (class V: 2.0 mg/L)",
    "ph": "physics: the pH scale; natural waters stay within 4–11",
    "dissolved_oxygen": "physics: saturation is 14.6 mg/L at 0 °C; algae supersaturate "
                        "water up to about 20 mg/L",
    "conductivity": "physics: sea water is about 50,000 µS/cm, brines up to about 200,000",
    "turbidity": "judgement: nephelometric turbidimeters (ISO 7027) read up to a few "
                 "thousand NTU",
    "permanganate_index": _GB3838 + " (class V: 15 mg/L)",
    "total_nitrogen": _GB3838 + " (class V: 2.0 mg/L)",
    "total_phosphorus": _GB3838 + " (class V: 0.4 mg/L)",
    "suspended_solids": "judgement (no standard range found): 10 g/L is a mud flow",
    "wastewater_flow": "judgement (no standard range found): 100 m³/s is a river",
    "battery_voltage": "12 V and 24 V logger supplies; 60 V is the limit of safety extra-low "
                       "voltage (IEC 61140)",
    "logger_temperature": "data loggers' extended operating range (e.g. Campbell CR1000X "
                          "−55…+85 °C)",
    "radar_peak_power": "judgement: weather radars' klystron and magnetron transmitters peak "
                        "at 250-1,000 kW (C and S band); 2 MW is beyond any",
    "radar_transmitter_temperature": "judgement: electronics' −60…+85 °C storage range; "
                                     "outside −30…+60 °C a transmitter needs attention",
    "radar_shelter_temperature": "judgement: an air-conditioned shelter outside −20…+45 °C "
                                 "has lost its climate control",
    "equipment_alarm_count": "judgement: a count is not negative; 10,000 alarms at once is "
                             "a broken report",
    "equipment_alarm_code": "codes as the equipment defines them: a non-negative 32-bit "
                            "integer",
}

RANGE_KEYS = ("min", "max", "suspect_min", "suspect_max")
ELEMENT_KEYS = set(RANGE_KEYS) | {"step_max", "step_interval_s", "persistence_window_s",
                                  "persistence_min_variation", "months"}
QC_KEYS = {"checks", "limits", "time"}
TIME_KEYS = {"max_future_s", "max_past_s"}


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
    time = _time_limits(table.get("time", {}), fail)
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
    return QCSettings(limits, checks, time), problems


def _time_limits(table: Any, fail) -> TimeLimits:
    """``[qc.time]``: how far ahead and behind the present an observation may be dated."""
    if not isinstance(table, dict):
        fail("time", "must be a table: [qc.time] with max_future_s, max_past_s")
        return TimeLimits()
    values = {}
    for name, value in table.items():
        if name not in TIME_KEYS:
            fail(f"time.{name}", f"unknown key; known keys: {', '.join(sorted(TIME_KEYS))}")
        elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
            fail(f"time.{name}", f"must be a whole number of seconds >= 0, not {value!r}")
        else:
            values[name] = value
    return TimeLimits(**values)


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
             "persistence | source |", "|---|---|---|---|---|---|---|---|---|"]
    for element, l in limits.items():
        step = "" if l.step_max is None else f"{l.step_max:g} per {l.step_interval_s} s"
        flat = "" if l.persistence_window_s is None else \
            f"< {l.persistence_min_variation:g} over {l.persistence_window_s // 60} min"
        lines.append(f"| `{element}` | {l.unit} | {show(l.min)} | {show(l.max)} | "
                     f"{show(l.suspect_min)} | {show(l.suspect_max)} | {step} | {flat} | "
                     f"{LIMIT_SOURCES.get(element, '')} |")
    return "\n".join(lines)
