"""What the items of the CMA surface AWS files mean: element, unit, scale, period.

Field order of the hourly ``Z_SURF_I_…_O_AWS_FTM`` file and the fixed columns of the ISOS
minute file ``AWS_M_Z_…`` follow the public AHQC tool's tables (docs/formats.md names
them). The files write integers: tenths of hPa, °C, mm and m/s, whole degrees, metres and
percent. An item whose scale or meaning is not certain is kept as written (its CMA code as
element, no unit), never rescaled by a guess; clock times of extremes (``hhmm``), codes and
free text are not observations.
"""

from __future__ import annotations

from typing import NamedTuple


class Item(NamedTuple):
    code: str
    element: str | None  # vocabulary name; None: the CMA code is the element
    unit: str
    scale: float | None  # None: not an observation (clock time, code, text)
    period_s: int | None = None  # seconds the value covers, ending at the observation time


HOUR_TO_DATE = -1  # period_s marker: accumulated since the top of the hour (minute file)


def _value(code, element, unit, scale, period_s=None) -> Item:
    return Item(code, element, unit, scale, period_s)


def _as_written(code: str) -> Item:
    return Item(code, None, "", 1.0)


def _not_observed(code: str) -> Item:
    return Item(code, None, "", None)


def _tenths(code, element, unit, period_s=None) -> Item:
    return Item(code, element, unit, 0.1, period_s)


HOUR, DAY = 3600, 86400

# Hourly file: the header line, then sections, each an id followed by its items.
HEADER_ITEMS = ("stationNum", "time", "latitude", "longitude", "height", "PPHeight",
                "awsMode", "QCCode", "CCX")

HOURLY_SECTIONS: dict[str, tuple[Item, ...]] = {
    "PP": (_tenths("P", "air_pressure", "hPa"), _tenths("SP", "sea_level_pressure", "hPa"),
           _tenths("VP3", None, "hPa", 3 * HOUR), _tenths("VP24", None, "hPa", DAY),
           _tenths("MaxP", None, "hPa", HOUR), _not_observed("MaxPT"),
           _tenths("MinP", None, "hPa", HOUR), _not_observed("MinPT")),
    "TH": (_tenths("T", "air_temperature", "degC"),
           _tenths("MaxT", "air_temperature_max", "degC", HOUR), _not_observed("MaxTT"),
           _tenths("MinT", "air_temperature_min", "degC", HOUR), _not_observed("MinTT"),
           _tenths("VT24", None, "degC", DAY),
           _tenths("MaxT24", "air_temperature_max", "degC", DAY),
           _tenths("MinT24", "air_temperature_min", "degC", DAY),
           _tenths("TD", "dew_point_temperature", "degC"),
           _value("RH", "relative_humidity", "%", 1.0),
           _value("MinRH", None, "%", 1.0, HOUR), _not_observed("MinRHT"),
           _tenths("WP", None, "hPa")),
    "RE": (_tenths("HRain", "precipitation_amount", "mm", HOUR),
           _tenths("HRain3", "precipitation_amount", "mm", 3 * HOUR),
           _tenths("HRain6", "precipitation_amount", "mm", 6 * HOUR),
           _tenths("HRain12", "precipitation_amount", "mm", 12 * HOUR),
           _tenths("HRain24", "precipitation_amount", "mm", DAY),
           _as_written("RainMT"), _as_written("RainM"), _tenths("E", None, "mm", HOUR)),
    "WI": (_value("WD2", "wind_direction", "deg", 1.0, 120),
           _tenths("WS2", "wind_speed", "m/s", 120),
           _value("WD10", "wind_direction", "deg", 1.0, 600),
           _tenths("WS10", "wind_speed", "m/s", 600),
           _value("MaxWD", None, "deg", 1.0, HOUR), _tenths("MaxWS", None, "m/s", HOUR),
           _not_observed("MaxWST"),
           _value("WD", "wind_direction", "deg", 1.0), _tenths("WS", "wind_speed", "m/s"),
           _value("ExWD", None, "deg", 1.0, HOUR),
           _tenths("ExWS", "wind_speed_max", "m/s", HOUR), _not_observed("ExWST"),
           _tenths("ExWS6", "wind_speed_max", "m/s", 6 * HOUR),
           _value("ExWD6", None, "deg", 1.0, 6 * HOUR),
           _tenths("ExWS12", "wind_speed_max", "m/s", 12 * HOUR),
           _value("ExWD12", None, "deg", 1.0, 12 * HOUR)),
    "DT": (_tenths("ET", None, "degC"), _tenths("MaxET", None, "degC", HOUR),
           _not_observed("MaxETT"), _tenths("MinET", None, "degC", HOUR),
           _not_observed("MinETT"), _tenths("MinET12", None, "degC", 12 * HOUR),
           *(_tenths(f"ET{depth}", None, "degC") for depth in (5, 10, 15, 20, 40, 80, 160,
                                                               320)),
           _tenths("GT", None, "degC"), _tenths("MaxGT", None, "degC", HOUR),
           _not_observed("MaxGTT"), _tenths("MinGT", None, "degC", HOUR),
           _not_observed("MinGTT")),
    "VV": (_value("V1", "visibility", "m", 1.0, 60), _value("V10", "visibility", "m", 1.0, 600),
           _value("MinV", None, "m", 1.0, HOUR), _not_observed("MinVT")),
    "CW": (_as_written("V"), _as_written("CA"), _as_written("LCA"), _as_written("RCA"),
           _value("CH", None, "m", 1.0), _not_observed("CF"), _not_observed("CFC"),
           _not_observed("WW"), _not_observed("WT"), _not_observed("W1"),
           _not_observed("W2"), _as_written("EC")),
    "SP": (_value("SnowD", "snow_depth", "cm", 1.0),
           *(_as_written(code) for code in ("SnowP", "FE1U", "FE1D", "FE2U", "FE2D", "TRT",
                                            "TRD", "GA", "HA"))),
    "MR": (_not_observed("HMRain"),),  # the hour's 60 minute amounts as one code string
}
# Free text (present weather) up to the next section id, then the quality sections: QC is
# a heading, Q1/Q2/Q3 (station, province, national level) give one digit per item of each
# of the sections above, in this order.
TEXT_SECTION = "MW"
QUALITY_SECTIONS = ("Q1", "Q2", "Q3")
QUALITY_ORDER = ("PP", "TH", "RE", "WI", "DT", "VV", "CW", "SP", "MR")
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
    (_value("WD2", "wind_direction", "deg", 1.0, 120), 4),
    (_tenths("WS2", "wind_speed", "m/s", 120), 4),
    (_value("WD10", "wind_direction", "deg", 1.0, 600), 4),
    (_tenths("WS10", "wind_speed", "m/s", 600), 4),
    (_value("WD", "wind_direction", "deg", 1.0), 4), (_tenths("WS", "wind_speed", "m/s"), 4),
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
