"""CMA ISOS minute files ``AWS_M_Z_<IIiii>_<yyyyMMdd>.txt``: one fixed-width line a minute.

A line starts with the minute (``hhmm``, Beijing time unless the source's ``utc_offset``
says otherwise), then 48 columns of integers and one weather code (cma_aws_items), then one
quality digit per column. The file belongs to an AWS day, which runs from 20:01 of the day
before to 20:00 of the day in the file name, so a minute after 20:00 is of the day before.
The date is only in the file name: sources pass it through ``start_stream``, and option
``day`` sets it for a renamed file.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from obslink.errors import ConfigError
from obslink.plugins.cma_aws_items import (HOUR_TO_DATE, MINUTE_COLUMNS, MINUTE_LINE_CHARS,
                                          MINUTE_QUALITY)
from obslink.plugins.cma_aws_values import (ENCODING_OPTION, BadValue, checked_encoding,
                                           decode_cma_text, quality_flag, reading_for)
from obslink.plugins.formats import Decoded, FormatAdapter, Option, Quarantined
from obslink.plugins import hookimpl
from obslink.plugins.text_lines import complete_lines
from obslink.readings import local_to_utc_us

FILE_NAME_RE = re.compile(r"AWS_M_Z_\w+?_(\d{8})\.txt$", re.IGNORECASE)
WEATHER_CODE_BEGINS = next(c.begin for c in MINUTE_COLUMNS if c.item.code == "Weatherphcode")
DAY_STARTS_AFTER = 2000  # hhmm: later minutes belong to the AWS day before the file's


class CMAMinuteAdapter(FormatAdapter):
    name = "cma_aws_minute"
    version = "1.0"
    summary = "CMA ISOS minute files AWS_M_Z_<IIiii>_<yyyyMMdd>.txt (fixed width)"
    options = {
        "encoding": ENCODING_OPTION,
        "day": Option("", "the file's AWS day as yyyyMMdd when its name does not say it "
                      "(a renamed file); empty: from the file name"),
    }

    def __init__(self, context=None) -> None:
        super().__init__(context)
        checked_encoding(self.name, self.option_values["encoding"])
        day = self.option_values["day"]
        if day and not _valid_day(day):
            raise ConfigError(f"option day of format {self.name!r} must be a date as "
                              f"yyyyMMdd, not {day!r}")
        self.day = day or None
        self.line_number = 0

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        first = head.removeprefix(b"\xef\xbb\xbf").split(b"\n", 1)[0].rstrip(b"\r")
        return len(first) >= MINUTE_LINE_CHARS and first[:4].isdigit() and \
            b" " not in first[:WEATHER_CODE_BEGINS]

    def start_stream(self, name: str) -> None:
        if self.option_values["day"]:
            return
        match = FILE_NAME_RE.search(name)
        self.day = match.group(1) if match and _valid_day(match.group(1)) else None

    def get_state(self) -> dict:
        return {"line": self.line_number, "day": self.day}

    def set_state(self, state: dict | None) -> None:
        state = state or {}
        self.line_number = int(state.get("line", 0))
        self.day = self.option_values["day"] or state.get("day")

    def decode(self, data: bytes, *, start: int, final: bool) -> Decoded:
        result = Decoded()
        for line_start, line_end in complete_lines(data, final):
            self.line_number += 1
            raw = data[line_start:line_end]
            text = decode_cma_text(raw, self.option_values["encoding"]).rstrip("\r\n")
            if text.strip() and not text.startswith("-"):  # "-" lines separate, AHQC skips
                problem = self._take_line(text, result)
                if problem:
                    result.quarantined.append(Quarantined(
                        start + line_start, self.line_number,
                        f"line {self.line_number}: {problem}", raw))
            result.consumed = line_end
        return result

    def _take_line(self, text: str, result: Decoded) -> str | None:
        """Add the line's readings; or return why it cannot be read (nothing added)."""
        minute = text[:4]
        if not (len(minute) == 4 and minute.isascii() and minute.isdigit()) or \
                int(minute[:2]) > 23 or \
                int(minute[2:]) > 59:
            return f"{minute!r} is not a minute (hhmm): not a minute record"
        if len(text) < MINUTE_LINE_CHARS:
            return (f"{len(text)} characters; a minute record has {MINUTE_LINE_CHARS} "
                    f"({MINUTE_QUALITY[1]} with its quality digits)")
        if self.day is None:
            return ("the AWS day is unknown: the file name is not AWS_M_Z_<IIiii>_<yyyyMMdd>"
                    ".txt; set the source's option day=yyyyMMdd")
        local = datetime.strptime(self.day + minute, "%Y%m%d%H%M")
        if int(minute) > DAY_STARTS_AFTER:
            local -= timedelta(days=1)
        observed_at = local_to_utc_us(local, self.context.utc_offset_minutes)
        quality = text[MINUTE_QUALITY[0]:MINUTE_QUALITY[1]]
        readings, skipped = [], 0
        for index, column in enumerate(MINUTE_COLUMNS):
            item = column.item
            if item.scale is None:
                skipped += 1
                continue
            token = text[column.begin:column.end].strip()
            period = item.period_s
            if period == HOUR_TO_DATE:  # accumulated since the top of the hour
                period = (int(minute[2:]) or 60) * 60
            digit = quality[index] if len(quality) == len(MINUTE_COLUMNS) else "/"
            try:
                readings.append(reading_for(item, token, observed_at, period,
                                            quality_flag([digit])))
            except BadValue as exc:
                return f"column {column.begin}-{column.end}: {exc}"
        result.readings.extend(readings)
        result.skipped_text += skipped
        return None


def _valid_day(text: str) -> bool:
    try:
        datetime.strptime(text, "%Y%m%d")
    except ValueError:
        return False
    return len(text) == 8


@hookimpl
def obslink_register_formats(registry):
    registry.add_format(CMAMinuteAdapter)
