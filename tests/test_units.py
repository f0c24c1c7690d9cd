"""One unit per element: spellings mapped, conversions exact, the source's unit kept."""

from __future__ import annotations

from decimal import Decimal, localcontext
from fractions import Fraction

from hypothesis import example, given
from hypothesis import strategies as st

from obslink.plugins.units import as_stored, column_unit, conversion, to_canonical_units
from obslink.plugins.vocabulary import ELEMENTS
from obslink.readings import Reading


def stored(element: str, value: float | None, unit: str) -> Reading:
    return to_canonical_units([Reading(0, element, value, unit, "F")])[0]


def test_a_loggers_spelling_is_the_elements_unit_with_its_own_kept():
    for element, unit, canonical in (("air_temperature", "Deg C", "degC"),
                                     ("battery_voltage", "Volts", "V"),
                                     ("wind_speed", "meters/second", "m/s"),
                                     ("wind_direction", "degrees", "deg"),
                                     ("air_pressure", "mbar", "hPa")):
        reading = stored(element, 12.5, unit)
        assert (reading.value, reading.unit, reading.source_unit) == (12.5, canonical, unit)


def test_conversions_are_exact_in_decimal():
    assert stored("air_temperature", 296.45, "K").value == 23.3
    assert stored("pm2_5", 0.057, "mg/m3").value == 57.0  # 0.057 * 1000 is 57.00000000000001
    assert stored("o3", 63.0, "ug/m3").value == 0.063
    assert stored("air_pressure", 101.325, "kPa").value == 1013.25
    assert stored("precipitation_amount", 12.5, "kg m-2").value == 12.5
    assert stored("wind_speed", 10.0, "knots").value == float(Fraction(18520, 3600))
    assert stored("air_temperature", 32.0, "degF").value == 0.0
    missing = stored("air_temperature", None, "K")
    assert (missing.value, missing.unit, missing.source_unit) == (None, "degC", "K")


def test_what_cannot_be_converted_is_kept_as_written():
    odd = stored("air_temperature", 1.0, "furlongs")
    assert (odd.value, odd.unit, odd.source_unit) == (1.0, "furlongs", None)
    unmapped = stored("AirTC_Avg", 1.0, "Deg C")  # outside the vocabulary: spelling only
    assert (unmapped.unit, unmapped.source_unit) == ("degC", "Deg C")


def test_readings_already_in_their_units_pass_untouched():
    readings = [Reading(0, "air_temperature", 1.5, "degC", "T"),
                Reading(0, "relative_humidity", 80.0, "%", "RH")]
    assert to_canonical_units(readings) == readings
    assert as_stored([Reading(0, "air_temperature", float("nan"), "K", "T")])[0][2:6] == \
        (None, "degC", "T", "NAN")


def test_every_element_has_a_unit_its_own_spelling_maps_to():
    for element, (unit, _meaning) in ELEMENTS.items():
        assert conversion(unit, unit) is not None, element


DECIMAL_FACTORS = [("kPa", "hPa"), ("Pa", "hPa"), ("mg/m3", "ug/m3"), ("ug/m3", "mg/m3"),
                   ("K", "degC"), ("km", "m"), ("mm", "cm"), ("kJ/m2", "MJ/m2"),
                   ("%", "m3/m3"), ("mV", "V")]


@given(st.decimals(min_value=-10**6, max_value=10**6, places=4, allow_nan=False,
                   allow_infinity=False), st.sampled_from(DECIMAL_FACTORS))
@example(Decimal("0.057"), ("mg/m3", "ug/m3"))
@example(Decimal("296.45"), ("K", "degC"))
def test_a_converted_value_is_the_float_nearest_the_exact_decimal_result(number, units):
    """Checked against Python's decimal arithmetic, independent of obslink's fractions."""
    value = float(number)
    factor, offset = conversion(*units)
    with localcontext() as context:
        context.prec = 60
        exact = Decimal(repr(value)) * (Decimal(factor.numerator) / factor.denominator) + \
            Decimal(offset.numerator) / offset.denominator
    element = {"hPa": "air_pressure", "ug/m3": "pm2_5", "mg/m3": "o3", "degC":
               "air_temperature", "m": "visibility", "cm": "snow_depth",
               "MJ/m2": "solar_radiation_total", "m3/m3": "soil_moisture",
               "V": "battery_voltage"}[units[1]]
    assert stored(element, value, units[0]).value == float(exact)


@given(st.sampled_from(["Deg C", "degC", "K", "Volts", "mbar", "kPa", "furlongs", ""]),
       st.sampled_from(["air_temperature", "battery_voltage", "air_pressure", "AirTC"]))
def test_an_adapters_column_renaming_stores_what_the_agent_would(unit, element):
    """TOA5 and TOB1 rename a spelling once per column (column_unit); what the agent then
    stores is exactly what it stores of the reading as the file wrote it."""
    renamed, source_unit = column_unit(element, unit)
    written = Reading(0, element, 296.45, unit, "F")
    planned = Reading(0, element, 296.45, renamed, "F", source_unit=source_unit)
    assert as_stored([planned]) == as_stored([written])


def test_the_toa5_reader_renames_spellings_and_leaves_conversions_to_the_agent():
    from obslink.plugins.formats import AdapterContext
    from obslink.plugins.toa5 import TOA5Adapter

    data = (b'"TOA5","S","CR1000X","1","OS","P","1","T"\n"TIMESTAMP","RECORD","T","TK"\n'
            b'"TS","RN","Deg C","K"\n"","","Smp","Smp"\n"2026-01-01 00:00:00",1,20.5,296.45\n')
    context = AdapterContext("S", 0, {}, {"T": ("air_temperature", None),
                                          "TK": ("air_temperature", None)})
    decoded = TOA5Adapter(context).decode(data, start=0, final=True).readings
    assert [(r.value, r.unit, r.source_unit) for r in decoded] == [
        (20.5, "degC", "Deg C"), (296.45, "K", None)]
    assert [(r.value, r.unit, r.source_unit) for r in as_stored(decoded)] == [
        (20.5, "degC", "Deg C"), (23.3, "degC", "K")]
