"""Writes CMA surface AWS files (hourly Z records, ISOS minute lines) for tests, benchmarks
and golden cases, in the layout obslink.plugins.cma_aws_items describes."""

from __future__ import annotations

from datetime import datetime

from obslink.plugins.cma_aws_items import (HOURLY_SECTIONS, MINUTE_COLUMNS, QUALITY_DIGITS,
                                          QUALITY_ORDER)


def thousand_minus(tenths: int) -> str:
    """How the hourly file writes a temperature of ``tenths`` / 10: 1000 - tenths, 4 digits
    (−1.2 °C is 1012, +3.9 °C is 0961)."""
    return f"{1000 - tenths:04d}"


# A plausible winter hour at a station near Nanjing, as the file writes it: tenths, and
# temperatures (with the pressure tendencies) as 1000 - tenths.
HOURLY_VALUES: dict[str, str] = {
    "P": "10183", "SP": "10251", "VP3": thousand_minus(-12), "VP24": thousand_minus(35),
    "MaxP": "10186", "MaxPT": "0512", "MinP": "10179", "MinPT": "0547",
    "T": thousand_minus(-12), "MaxT": thousand_minus(1), "MaxTT": "0503",
    "MinT": thousand_minus(-25), "MinTT": "0549", "VT24": thousand_minus(-31),
    "MaxT24": thousand_minus(84), "MinT24": thousand_minus(-41), "TD": thousand_minus(-51),
    "RH": "075", "MinRH": "071", "MinRHT": "0511", "WP": "0043",
    "HRain": ",,,,", "HRain3": "00002", "HRain6": "00002", "HRain12": "00002",
    "HRain24": "00013", "RainMT": "//", "RainM": "/////", "E": "0001",
    "WD2": "045", "WS2": "023", "WD10": "050", "WS10": "021", "MaxWD": "047", "MaxWS": "034",
    "MaxWST": "0522", "WD": "040", "WS": "026", "ExWD": "052", "ExWS": "061",
    "ExWST": "0531", "ExWS6": "072", "ExWD6": "058", "ExWS12": "081", "ExWD12": "061",
    "ET": thousand_minus(-31), "MaxET": thousand_minus(-18), "MaxETT": "0501",
    "MinET": thousand_minus(-35), "MinETT": "0555", "MinET12": thousand_minus(-47),
    **{f"ET{depth}": thousand_minus(tenths) for depth, tenths in (
        (5, 12), (10, 25), (15, 33), (20, 41), (40, 64), (80, 98), (160, 141), (320, 176))},
    "GT": thousand_minus(-44), "MaxGT": thousand_minus(-30), "MaxGTT": "0500",
    "MinGT": thousand_minus(-49), "MinGTT": "0558",
    "V1": "08500", "V10": "08700", "MinV": "07900", "MinVT": "0533",
    "V": "/////", "CA": "///", "LCA": "///", "RCA": "///", "CH": "/////", "CF": "/////////",
    "CFC": "//", "WW": "//", "WT": "//", "W1": "/", "W2": "/", "EC": "//",
    "SnowD": "////", "SnowP": "///", "FE1U": "///", "FE1D": "///", "FE2U": "///",
    "FE2D": "///", "TRT": "///", "TRD": "///", "GA": "///", "HA": "///",
    # two digits a minute, tenths of mm: a trace in the hour's 41st minute
    "HMRain": "00" * 40 + ",," + "00" * 19,
}


def hourly_record(station: str, time: datetime, values: dict[str, str] | None = None,
                  correction: str = "000", weather: str = "10.",
                  quality: tuple[str, str, str] | None = ("0", "9", "9")) -> str:
    """One record of a Z file, lines ending in CRLF; ``time`` is UTC."""
    values = {**HOURLY_VALUES, **(values or {})}
    lines = [f"{station} {time:%Y%m%d%H%M%S} 320000 1184800 00089 00099 1 000 {correction}"]
    for section, items in HOURLY_SECTIONS.items():
        lines.append(" ".join([section, *(values[item.code] for item in items)]))
    lines.append(f"MW {weather}")
    if quality is not None:
        lines.append("QC")
        for level, digit in zip(("Q1", "Q2", "Q3"), quality):
            lines.append(" ".join([level, *(digit * QUALITY_DIGITS[s]
                                            for s in QUALITY_ORDER)]))
    lines += ["=", "NNNN"]
    return "\r\n".join(lines) + "\r\n"


def minute_values(minute_of_day: int, temperature_tenths: int = -12) -> dict[str, int | str]:
    """Plausible values of one minute (integers as the file writes them)."""
    return {
        "WD2": 45, "WS2": 23, "WD10": 50, "WS10": 21, "WD": 40, "WS": 26, "WS2F": 31,
        "WD10F": 52, "WDF": 55, "minuR": 0, "hourR": 2, "minuR2": 0, "hourR2": 2,
        "minuRW": 0, "hourRW": 3, "tempis": temperature_tenths + minute_of_day % 7,
        "rsWindspeed": 32, "temprs": -10, "Wettemp": -31, "HumicapRH": 75, "Rh": 75,
        "VPressure": 43, "DewPointtemp": -51, "Pressure": 10183, "Grasstemp": -44,
        "Groundtemppt": -31, "Groundtempinfrared": -33, "g5temp": 12, "g10temp": 25,
        "g15temp": 33, "g20temp": 41, "g40temp": 64, "g80temp": 98, "g160temp": 141,
        "g320temp": 176, "OntimeEvacap": 1203, "EvaCapacity": 1, "Vis_1min": 8500,
        "Vis_10min": 8700, "Cloudheight": "/////", "Cloudage": "////",
        "Lowcloudage": "////", "Weatherphcode": "10          ", "Snowdeep": "////",
        "Freezingrain": "////", "Wireice": "////", "Frozensoliddeep": "////",
        "Lightingfreq": 0,
    }


def minute_line(hhmm: str, values: dict[str, int | str], quality: str | None = "0" * 48
                ) -> str:
    """One fixed-width line of a minute file: integers zero-padded to the column's width,
    strings (missing markers, the weather code) as given."""
    parts = [hhmm]
    for column in MINUTE_COLUMNS:
        width = column.end - column.begin
        value = values[column.item.code]
        text = f"{value:0{width}d}" if isinstance(value, int) else str(value)
        if len(text) != width:
            raise ValueError(f"{column.item.code}: {text!r} is not {width} characters wide")
        parts.append(text)
    return "".join(parts) + (quality or "") + "\r\n"
