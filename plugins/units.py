"""One unit per element: loggers' spellings mapped, other units converted exactly.

Every element of the vocabulary has one canonical unit (its usual unit, docs/elements.md).
The agent turns each reading into it before QC and before it is signed: a logger's
spelling of the same unit (``Deg C``, ``Volts``, ``meters/second``) is renamed, a different
unit (K, kPa, mg/m3 where ug/m3 is canonical, knots …) is converted, and the unit the source
wrote stays on the reading (``source_unit``) and in the catalog's series, for provenance.

Conversions are exact: the value's decimal text (the shortest that reads back as the same
float) times an exact factor plus an exact offset, in rational arithmetic, rounded once to
the nearest float. 296.45 K is 23.3 degC, not 23.30000000000001; 0.057 mg/m3 is 57 ug/m3.
A unit library (pint 0.25) would add about 0.25 s of start-up and 19 MiB of memory to a
gateway's agent and still convert in binary floating point; the table below is all obslink
needs. A unit not listed is kept as the source wrote it (the reading is then not range
checked, docs/qc.md).
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from typing import Sequence

from obslink.plugins.vocabulary import ELEMENTS
from obslink.readings import Reading, finite_only

# How loggers, BUFR (ecCodes) and HJ 212 devices spell the vocabulary's units
UNIT_ALIASES: dict[str, str] = {
    "Deg C": "degC", "DegC": "degC", "deg C": "degC", "°C": "degC", "℃": "degC", "C": "degC",
    "celsius": "degC", "Celsius": "degC",
    "meters/second": "m/s", "m/sec": "m/s", "m s-1": "m/s", "meter/second": "m/s",
    "W/m^2": "W/m2", "W m-2": "W/m2", "MJ/m^2": "MJ/m2", "kJ/m^2": "kJ/m2", "J m-2": "J/m2",
    "J/m^2": "J/m2",
    "Volts": "V", "volts": "V", "Volt": "V", "degrees": "deg", "Degrees": "deg",
    "degree": "deg", "m^3/m^3": "m3/m3", "millibar": "mbar", "mb": "mbar", "%RH": "%",
    "percent": "%", "μg/m3": "ug/m3", "µg/m3": "ug/m3", "ug/m^3": "ug/m3", "µg/m^3": "ug/m3",
    "mg/m^3": "mg/m3", "mg/l": "mg/L", "meters": "m", "meter": "m", "knots": "knot",
    "kts": "knot", "kt": "knot", "kg m-2": "kg/m2", "kg/m^2": "kg/m2", "μS/cm": "uS/cm",
    "µS/cm": "uS/cm", "us/cm": "uS/cm", "m^3/s": "m3/s", "m^3/h": "m3/h", "l/s": "L/s",
    "km/hr": "km/h", "kph": "km/h", "hours": "h", "hour": "h", "minutes": "min",
    "seconds": "s", "sec": "s",
}

# (unit, canonical unit) -> (factor, offset) as exact decimal or rational text:
# value in the canonical unit = value * factor + offset
_CONVERSIONS: dict[tuple[str, str], tuple[str, str]] = {
    ("K", "degC"): ("1", "-273.15"), ("degF", "degC"): ("5/9", "-160/9"),
    ("kPa", "hPa"): ("10", "0"), ("Pa", "hPa"): ("0.01", "0"), ("mbar", "hPa"): ("1", "0"),
    ("hPa", "kPa"): ("0.1", "0"), ("Pa", "kPa"): ("0.001", "0"), ("mbar", "kPa"): ("0.1", "0"),
    ("mg/m3", "ug/m3"): ("1000", "0"), ("ug/m3", "mg/m3"): ("0.001", "0"),
    ("km", "m"): ("1000", "0"), ("cm", "m"): ("0.01", "0"), ("mm", "m"): ("0.001", "0"),
    ("mm", "cm"): ("0.1", "0"), ("m", "cm"): ("100", "0"),
    ("kg/m2", "mm"): ("1", "0"),  # a kilogram of water on a square metre is 1 mm deep
    ("kJ/m2", "MJ/m2"): ("0.001", "0"), ("J/m2", "MJ/m2"): ("0.000001", "0"),
    ("%", "m3/m3"): ("0.01", "0"),
    ("h", "min"): ("60", "0"), ("s", "min"): ("1/60", "0"),
    ("knot", "m/s"): ("1852/3600", "0"), ("km/h", "m/s"): ("1/3.6", "0"),
    ("mV", "V"): ("0.001", "0"),
    ("mS/cm", "uS/cm"): ("1000", "0"), ("mS/m", "uS/cm"): ("10", "0"),
    ("m3/h", "m3/s"): ("1/3600", "0"), ("m3/h", "L/s"): ("1000/3600", "0"),
    ("m3/s", "L/s"): ("1000", "0"), ("L/min", "L/s"): ("1/60", "0"),
}


def canonical_unit(element: str) -> str | None:
    """The element's one unit; None for a name outside the vocabulary."""
    known = ELEMENTS.get(element)
    return known[0] if known else None


def spelling(unit: str) -> str:
    """The vocabulary's spelling of ``unit`` (``Deg C`` -> ``degC``)."""
    return UNIT_ALIASES.get(unit, unit)


@lru_cache(maxsize=4096)
def conversion(unit: str, target: str) -> tuple[Fraction, Fraction] | None:
    """(factor, offset) from ``unit`` (any spelling) to ``target``; None if unknown."""
    unit = spelling(unit)
    if unit == target:
        return Fraction(1), Fraction(0)
    found = _CONVERSIONS.get((unit, target))
    if found is None:
        return None
    factor, offset = (Fraction(_exact(text)) for text in found)
    return factor, offset


def _exact(text: str) -> Fraction:
    numerator, _, denominator = text.partition("/")
    return Fraction(numerator) / Fraction(denominator or "1")


def convert(value: float, factor: Fraction, offset: Fraction) -> float:
    """``value * factor + offset`` computed exactly on the value's decimal text."""
    if factor == 1 and offset == 0:
        return value
    return float(Fraction(repr(value)) * factor + offset)


@lru_cache(maxsize=4096)
def _plan(element: str, unit: str) -> tuple[str, tuple[Fraction, Fraction] | None] | None:
    """(unit to write, conversion or None) for readings of ``element`` in ``unit``; None
    when they stay as they are."""
    target = canonical_unit(element)
    if target is not None:
        found = conversion(unit, target)
        if found is not None:
            if unit == target:
                return None
            return target, None if found == (1, 0) else found  # a spelling: no arithmetic
    renamed = spelling(unit)
    return None if renamed == unit else (renamed, None)


def column_unit(element: str, unit: str) -> tuple[str, str | None]:
    """(unit, source unit) for a column of an adapter that plans its columns once per
    header: a mere spelling (``Deg C``) is renamed there, once, instead of once per reading
    by :func:`to_canonical_units`; a unit that needs arithmetic is left to it."""
    plan = _plan(element, unit)
    if plan is None or plan[1] is not None:
        return unit, None
    return plan[0], unit


def stored_unit(element: str, unit: str) -> str:
    """The unit a reading of ``element`` written in ``unit`` is stored in."""
    plan = _plan(element, unit)
    return unit if plan is None else plan[0]


def to_canonical_units(readings: Sequence[Reading]) -> list[Reading]:
    """The readings in their elements' units, each converted one keeping the unit its source
    wrote in ``source_unit``. Readings already canonical are returned as they are."""
    plans = {key: _plan(*key) for key in set(zip([r[1] for r in readings],
                                                  [r[3] for r in readings]))}
    if not any(plans.values()):
        return list(readings)
    out, new = [], tuple.__new__  # Readings without NamedTuple's __new__: a loop per reading
    converted: dict[tuple, float] = {}  # a logger repeats values: each converted once
    for r in readings:
        plan = plans[(r[1], r[3])]
        if plan is None:
            out.append(r)
            continue
        unit, change = plan
        value = r[2]
        if change is not None and value is not None:
            key = (value, id(change))  # plans are cached: one object per conversion
            found = converted.get(key)
            if found is None:
                found = converted[key] = convert(value, *change)
            value = found
        out.append(new(Reading, (r[0], r[1], value, unit, r[4], r[5], r[6], r[7], r[8], r[9],
                                 r[10] or r[3])))
    return out


def as_stored(readings: Sequence[Reading]) -> list[Reading]:
    """An adapter's readings as the agent stores them, before QC: NaN and infinities made
    missing values, every value in its element's unit."""
    return to_canonical_units(finite_only(list(readings)))
