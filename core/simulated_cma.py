"""Writes CMA surface AWS files (hourly Z records, ISOS minute lines) for tests, benchmarks
and golden cases, in the layout obslink.plugins.cma_aws_items describes."""

from __future__ import annotations

from datetime import datetime

from obslink.plugins.cma_aws_items import (HOURLY_SECTIONS, MINUTE_COLUMNS, QUALITY_ORDER)

# A plausible winter hour at a station near Nanjing, as the file writes it (tenths etc.).
HOURLY_VALUES: dict[str, str] = {
    "P": "10183", "SP": "10251", "VP3": "-012", "VP24": "035", "MaxP": "10186",
    "MaxPT": "0512", "MinP": "10179", "MinPT": "0547",
    "T": "-012", "MaxT": "0001", "MaxTT": "0503", "MinT": "-025", "MinTT": "0549",
    "VT24": "-031", "MaxT24": "0084", "MinT24": "-041", "TD": "-051", "RH": "075",
    "MinRH": "071", "MinRHT": "0511", "WP": "0043",
    "HRain": "0000", "HRain3": "0000", "HRain6": "0002", "HRain12": "0002",
    "HRain24": "0013", "RainMT": "////", "RainM": "////", "E": "0001",
    "WD2": "045", "WS2": "023", "WD10": "050", "WS10": "021", "MaxWD": "047", "MaxWS": "034",
    "MaxWST": "0522", "WD": "040", "WS": "026", "ExWD": "052", "ExWS": "061",
    "ExWST": "0531", "ExWS6": "072", "ExWD6": "058", "ExWS12": "081", "ExWD12": "061",
    "ET": "-031", "MaxET": "-018", "MaxETT": "0501", "MinET": "-035", "MinETT": "0555",
    "MinET12": "-047", "ET5": "0012", "ET10": "0025", "ET15": "0033", "ET20": "0041",
    "ET40": "0064", "ET80": "0098", "ET160": "0141", "ET320": "0176", "GT": "-044",
    "MaxGT": "-030", "MaxGTT": "0500", "MinGT": "-049", "MinGTT": "0558",
    "V1": "08500", "V10": "08700", "MinV": "07900", "MinVT": "0533",
    "V": "/////", "CA": "///", "LCA": "///", "RCA": "///", "CH": "/////", "CF": "/////////",
    "CFC": "//", "WW": "//", "WT": "//", "W1": "/", "W2": "/", "EC": "//",
    "SnowD": "////", "SnowP": "////", "FE1U": "///", "FE1D": "///", "FE2U": "///",
    "FE2D": "///", "TRT": "///", "TRD": "///", "GA": "///", "HA": "///",
    "HMRain": "/" * 60,
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
            lines.append(" ".join([level, *(digit * len(HOURLY_SECTIONS[s])
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
