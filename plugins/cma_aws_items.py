"""What the items of the CMA surface AWS files mean: element, unit, scale, period.

Field order of the hourly ``Z_SURF_I_…_O_AWS_FTM`` file and the fixed columns of the ISOS
minute file ``AWS_M_Z_…`` follow the public AHQC tool's tables; how each hourly item is
written follows the national centre's own decoder (NMIC's CIMISS2 ``DecodeBABJ`` and its
``SurfaceObservationDataNation`` field rules), which AHQC's ``zItemsShouldMinusByThousand``
confirms for temperatures (docs/formats.md names the source of each item). The files write
integers: tenths of hPa, °C, mm, m/s and cm, whole degrees, metres and percent. The hourly
file writes temperatures (and the pressure tendencies VP3/VP24) as 1000 − 10·x, so ``0961``
is +3.9 °C and ``1116`` is −11.6 °C; the minute file writes plain signed tenths. An item
whose scale or meaning is not certain is kept as written (its CMA code as element, no
unit), never rescaled by a guess; clock times of extremes (``hhmm``), codes and free text
are not observations.
"""

from __future__ import annotations

from typing import NamedTuple


class Item(NamedTuple):
    code: str
    element: str | None  # vocabulary name; None: the CMA code is the element
    unit: str
    scale: float | None  # None: not an observation (clock time, code, text)
    period_s: int | None = None  # seconds the value covers, ending at the observation time
    minus_thousand: bool = False  # written as 1000 - value/scale (hourly temperatures)
    direction: bool = False  # a wind direction: PPC is calm


HOUR_TO_DATE = -1  # period_s marker: accumulated since the top of the hour (minute file)


def _value(code, element, unit, scale, period_s=None) -> Item:
    return Item(code, element, unit, scale, period_s)


def _as_written(code: str) -> Item:
    return Item(code, None, "", 1.0)


def _not_observed(code: str) -> Item:
    return Item(code, None, "", None)


def _tenths(code, element, unit, period_s=None) -> Item:
    return Item(code, element, unit, 0.1, period_s)


def _thousand_minus(code, element, unit, period_s=None) -> Item:
    """Tenths written as 1000 − 10·x: AHQC's zItemsShouldMinusByThousand, DecodeBABJ."""
    return Item(code, element, unit, 0.1, period_s, minus_thousand=True)


def _direction(code, element, period_s=None) -> Item:
    return Item(code, element, "deg", 1.0, period_s, direction=True)


HOUR, DAY = 3600, 86400

# Hourly file: the header line, then sections, each an id followed by its items.
HEADER_ITEMS = ("stationNum", "time", "latitude", "longitude", "height", "PPHeight",
                "awsMode", "QCCode", "CCX")

HOURLY_SECTIONS: dict[str, tuple[Item, ...]] = {
    "PP": (_tenths("P", "air_pressure", "hPa"), _tenths("SP", "sea_level_pressure", "hPa"),
           _thousand_minus("VP3", None, "hPa", 3 * HOUR),
           _thousand_minus("VP24", None, "hPa", DAY),
           _tenths("MaxP", None, "hPa", HOUR), _not_observed("MaxPT"),
           _tenths("MinP", None, "hPa", HOUR), _not_observed("MinPT")),
    "TH": (_thousand_minus("T", "air_temperature", "degC"),
           _thousand_minus("MaxT", "air_temperature_max", "degC", HOUR),
           _not_observed("MaxTT"),
           _thousand_minus("MinT", "air_temperature_min", "degC", HOUR),
           _not_observed("MinTT"),
           _thousand_minus("VT24", None, "degC", DAY),
           _thousand_minus("MaxT24", "air_temperature_max", "degC", DAY),
           _thousand_minus("MinT24", "air_temperature_min", "degC", DAY),
           _thousand_minus("TD", "dew_point_temperature", "degC"),
           _value("RH", "relative_humidity", "%", 1.0),
           _value("MinRH", None, "%", 1.0, HOUR), _not_observed("MinRHT"),
           _tenths("WP", None, "hPa")),
    "RE": (_tenths("HRain", "precipitation_amount", "mm", HOUR),
           _tenths("HRain3", "precipitation_amount", "mm", 3 * HOUR),
           _tenths("HRain6", "precipitation_amount", "mm", 6 * HOUR),
           _tenths("HRain12", "precipitation_amount", "mm", 12 * HOUR),
           _tenths("HRain24", "precipitation_amount", "mm", DAY),
           # the manual amount RainM covers RainMT hours, set by hand: a period, not a value
           _not_observed("RainMT"), _tenths("RainM", None, "mm"),
           _tenths("E", None, "mm", HOUR)),
    "WI": (_direction("WD2", "wind_direction", 120),
           _tenths("WS2", "wind_speed", "m/s", 120),
           _direction("WD10", "wind_direction", 600),
           _tenths("WS10", "wind_speed", "m/s", 600),
           _direction("MaxWD", None, HOUR), _tenths("MaxWS", None, "m/s", HOUR),
           _not_observed("MaxWST"),
           _direction("WD", "wind_direction"), _tenths("WS", "wind_speed", "m/s"),
           _direction("ExWD", None, HOUR),
           _tenths("ExWS", "wind_speed_max", "m/s", HOUR), _not_observed("ExWST"),
           _tenths("ExWS6", "wind_speed_max", "m/s", 6 * HOUR),
           _direction("ExWD6", None, 6 * HOUR),
           _tenths("ExWS12", "wind_speed_max", "m/s", 12 * HOUR),
           _direction("ExWD12", None, 12 * HOUR)),
    "DT": (_thousand_minus("ET", None, "degC"),
           _thousand_minus("MaxET", None, "degC", HOUR), _not_observed("MaxETT"),
           _thousand_minus("MinET", None, "degC", HOUR), _not_observed("MinETT"),
           _thousand_minus("MinET12", None, "degC", 12 * HOUR),
           *(_thousand_minus(f"ET{depth}", None, "degC") for depth in (5, 10, 15, 20, 40, 80,
                                                                       160, 320)),
           _thousand_minus("GT", None, "degC"),
           _thousand_minus("MaxGT", None, "degC", HOUR), _not_observed("MaxGTT"),
           _thousand_minus("MinGT", None, "degC", HOUR), _not_observed("MinGTT")),
    "VV": (_value("V1", "visibility", "m", 1.0, 60), _value("V10", "visibility", "m", 1.0, 600),
           _value("MinV", None, "m", 1.0, HOUR), _not_observed("MinVT")),
    # V: the hour's visibility in 0.1 km (NMIC: "multiply by 100")
    "CW": (_value("V", "visibility", "m", 100.0), _as_written("CA"), _as_written("LCA"),
           _as_written("RCA"),
           _value("CH", None, "m", 1.0), _not_observed("CF"), _not_observed("CFC"),
           _not_observed("WW"), _not_observed("WT"), _not_observed("W1"),
           _not_observed("W2"), _as_written("EC")),
    "SP": (_tenths("SnowD", "snow_depth", "cm"), _tenths("SnowP", None, "g/cm2"),
           *(_as_written(code) for code in ("FE1U", "FE1D", "FE2U", "FE2D", "TRT", "TRD",
                                            "GA", "HA"))),
    # the hour's 60 minute amounts, two digits each (tenths of mm), as one token
    "MR": (_tenths("HMRain", "precipitation_amount", "mm", 60),),
}
MINUTE_AMOUNTS = 60  # MR: minutes of the hour, each two digits and one quality digit
# Free text (present weather) up to the next section id, then the quality sections: QC is
# a heading, Q1/Q2/Q3 (station, province, national level) give one digit per item of each
# of the sections above, in this order (MR: one digit per minute).
TEXT_SECTION = "MW"
QUALITY_SECTIONS = ("Q1", "Q2", "Q3")
QUALITY_ORDER = ("PP", "TH", "RE", "WI", "DT", "VV", "CW", "SP", "MR")
QUALITY_DIGITS = {section: MINUTE_AMOUNTS if section == "MR" else len(HOURLY_SECTIONS[section])
                  for section in QUALITY_ORDER}
SECTION_IDS = (*HOURLY_SECTIONS, TEXT_SECTION, "QC", *QUALITY_SECTIONS)


# Minute file: one line per minute, fixed columns [begin, end) of characters.
class Column(NamedTuple):
    item: Item
    begin: int
    end: int


def _columns(*spec: tuple[Item, int]) -> tuple[Column, ...]:
    columns, begin = [], 4  # characters 0-3: the minute, hhmm
    for item, width in spec:
        columns.append(Column(item, begin, begin + width))
        begin += width
    return tuple(columns)


MINUTE_COLUMNS = _columns(
    (_direction("WD2", "wind_direction", 120), 4),
    (_tenths("WS2", "wind_speed", "m/s", 120), 4),
    (_direction("WD10", "wind_direction", 600), 4),
    (_tenths("WS10", "wind_speed", "m/s", 600), 4),
    (_direction("WD", "wind_direction"), 4), (_tenths("WS", "wind_speed", "m/s"), 4),
    (_as_written("WS2F"), 4), (_as_written("WD10F"), 4), (_as_written("WDF"), 4),
    (_tenths("minuR", "precipitation_amount", "mm", 60), 4),
    (_tenths("hourR", "precipitation_amount", "mm", HOUR_TO_DATE), 4),
    (_tenths("minuR2", None, "mm", 60), 4), (_tenths("hourR2", None, "mm", HOUR_TO_DATE), 4),
    (_tenths("minuRW", None, "mm", 60), 4), (_tenths("hourRW", None, "mm", HOUR_TO_DATE), 4),
    (_tenths("tempis", "air_temperature", "degC"), 4), (_as_written("rsWindspeed"), 4),
    (_as_written("temprs"), 4),
    (_tenths("Wettemp", None, "degC"), 4), (_value("HumicapRH", None, "%", 1.0), 4),
    (_value("Rh", "relative_humidity", "%", 1.0), 4), (_tenths("VPressure", None, "hPa"), 4),
    (_tenths("DewPointtemp", "dew_point_temperature", "degC"), 4),
    (_tenths("Pressure", "air_pressure", "hPa"), 5),
    (_tenths("Grasstemp", None, "degC"), 4),
    (_tenths("Groundtemppt", None, "degC"), 4), (_tenths("Groundtempinfrared", None, "degC"), 4),
    *((_tenths(f"g{depth}temp", None, "degC"), 4) for depth in (5, 10, 15, 20, 40, 80, 160,
                                                                320)),
    (_as_written("OntimeEvacap"), 4), (_as_written("EvaCapacity"), 4),
    (_value("Vis_1min", "visibility", "m", 1.0, 60), 5),
    (_value("Vis_10min", "visibility", "m", 1.0, 600), 5),
    (_value("Cloudheight", None, "m", 1.0), 5), (_as_written("Cloudage"), 4),
    (_as_written("Lowcloudage"), 4),
    (_not_observed("Weatherphcode"), 12),
    (_value("Snowdeep", "snow_depth", "cm", 1.0), 4), (_as_written("Freezingrain"), 4),
    (_as_written("Wireice"), 4), (_as_written("Frozensoliddeep"), 4),
    (_as_written("Lightingfreq"), 4),
)
MINUTE_QUALITY = (208, 256)  # one quality digit per column above, in column order
MINUTE_LINE_CHARS = MINUTE_QUALITY[0]  # shorter lines lack columns: quarantined
