"""CMA surface AWS hourly files ``Z_SURF_I_<IIiii>_<yyyyMMddhhmmss>_O_AWS_FTM[-CCx].txt``.

A record is a header line (station, UTC time, position, heights, mode, QC code, correction
mark) and sections, each a two-letter id and its items, ended by ``=`` and ``NNNN``. Several
records may follow each other. A section that does not read (wrong count, a bad value) is
quarantined alone; the record's other sections are kept. Corrections (``CCA``, ``CCB`` …
in the header, as in the ``-CCx`` file name) carry that mark in every reading's source flag.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from obslink.plugins.cma_aws_items import (HOURLY_SECTIONS, MINUTE_AMOUNTS, QUALITY_DIGITS,
                                          QUALITY_ORDER, QUALITY_SECTIONS, SECTION_IDS,
                                          TEXT_SECTION)
from obslink.plugins.cma_aws_values import (ENCODING_OPTION, BadValue, checked_encoding,
                                           decode_cma_text, quality_flag, reading_for)
from obslink.plugins.formats import Decoded, FormatAdapter, Option, Quarantined
from obslink.plugins import hookimpl
from obslink.plugins.text_lines import complete_lines
from obslink.readings import utc_us_from_datetime

HEADER_RE = re.compile(rb"^\s*[0-9A-Za-z]{5}\s+\d{14}(\s+\S+){7}\s*$")
CORRECTION_RE = re.compile(r"^CC[A-Z]$")
END = "NNNN"
MAX_RECORD_BYTES = 64 * 1024  # a record is about 1 KiB; no NNNN by then: not a record


class CMAHourlyAdapter(FormatAdapter):
    name = "cma_aws_hourly"
    version = "1.0"
    summary = "CMA surface AWS hourly files Z_SURF_I_<IIiii>_<time>_O_AWS_FTM[-CCx].txt"
    options = {
        "encoding": ENCODING_OPTION,
        "station_number": Option("", "accept only records of this station number (IIiii); "
                                 "empty: any"),
    }

    def __init__(self, context=None) -> None:
        super().__init__(context)
        checked_encoding(self.name, self.option_values["encoding"])
        self.line_number = 0  # lines consumed before this read

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        lines = head.removeprefix(b"\xef\xbb\xbf").lstrip().splitlines()
        return bool(lines) and HEADER_RE.match(lines[0]) is not None and \
            any(line.startswith(b"PP ") for line in lines[1:4])

    def get_state(self) -> dict:
        return {"line": self.line_number}

    def set_state(self, state: dict | None) -> None:
        self.line_number = int((state or {}).get("line", 0))

    def decode(self, data: bytes, *, start: int, final: bool) -> Decoded:
        result = Decoded()
        line = self.line_number
        record: tuple[int, int] | None = None  # (offset, line) of the open record's header
        stray: tuple[int, int] | None = None  # (offset, line) of lines outside any record
        for line_start, line_end in complete_lines(data, final):
            line += 1
            raw = data[line_start:line_end]
            is_header = HEADER_RE.match(raw.removeprefix(b"\xef\xbb\xbf")) is not None
            if stray is not None and (is_header or not raw.strip()):
                self._stray(data[stray[0]:line_start], start + stray[0], stray[1], result)
                stray = None
            if is_header:
                if record is not None:  # a header before the open record's NNNN
                    self._truncated(data[record[0]:line_start], start + record[0], record[1],
                                    result)
                record = (line_start, line)
            elif record is None:
                if raw.strip() and stray is None:
                    stray = (line_start, line)
            elif raw.strip() == END.encode():
                self._take_record(data[record[0]:line_end], start + record[0], record[1],
                                  result)
                record = None
            if record is None and stray is None:
                result.consumed, self.line_number = line_end, line
        if stray is not None and (final or len(data) - stray[0] > MAX_RECORD_BYTES):
            self._stray(data[stray[0]:], start + stray[0], stray[1], result)
            result.consumed, self.line_number = len(data), line
        elif record is not None and (final or len(data) - record[0] > MAX_RECORD_BYTES):
            self._truncated(data[record[0]:], start + record[0], record[1], result)
            result.consumed, self.line_number = len(data), line
        return result

    @staticmethod
    def _stray(raw: bytes, position: int, line: int, result: Decoded) -> None:
        result.quarantined.append(Quarantined(
            position, line, f"line {line}: not part of a record (a record starts with its "
            "header line: station, time yyyyMMddhhmmss and 7 more items)", raw))

    def _truncated(self, raw: bytes, position: int, line: int, result: Decoded) -> None:
        result.quarantined.append(Quarantined(position, line, f"line {line}: record ends "
                                              f"without {END} (a truncated file?)", raw))

    def _take_record(self, raw: bytes, position: int, first_line: int, result: Decoded) -> None:
        first_end = raw.find(b"\n") + 1 or len(raw)
        # The header matched HEADER_RE: nine tokens, split at the same ASCII whitespace as
        # its \s (str.split() would also split at control bytes such as 0x1C).
        header = [token.decode("ascii", "replace") for token in
                  raw[:first_end].removeprefix(b"\xef\xbb\xbf").split()]
        lines = decode_cma_text(raw[first_end:], self.option_values["encoding"]).split("\n")
        try:
            observed_at = utc_us_from_datetime(
                datetime.strptime(header[1], "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc))
        except ValueError:
            result.quarantined.append(Quarantined(position, first_line, f"line {first_line}: "
                                                  f"time {header[1]!r} is not a valid "
                                                  "yyyyMMddhhmmss", raw))
            return
        wanted = self.option_values["station_number"]
        if wanted and header[0] != wanted:
            result.quarantined.append(Quarantined(position, first_line, f"line {first_line}: "
                                                  f"station {header[0]} is not this source's "
                                                  f"station_number {wanted}", raw))
            return
        correction = header[8] if CORRECTION_RE.match(header[8]) else None
        sections, where, stray = _sections(lines, first_line + 1)
        if stray:
            result.quarantined.append(Quarantined(
                position, first_line + 1, f"line {first_line + 1}: {len(stray)} values before "
                f"the first section id ({' '.join(stray[:5])} …)", raw))
        quality = self._quality(sections, where, position, raw, result)
        for section_index, (section, items) in enumerate(HOURLY_SECTIONS.items()):
            tokens = sections.get(section)
            line = where.get(section, first_line)
            if tokens is None:
                problem = f"section {section} is missing"
            elif len(tokens) != len(items):
                problem = (f"section {section} has {len(tokens)} values, {len(items)} "
                           "expected")
            else:
                problem = self._take_section(section, section_index, items, tokens, quality,
                                             correction, observed_at, result)
            if problem:
                result.quarantined.append(Quarantined(position, line, f"line {line}: "
                                                      f"{problem}", raw))
        result.skipped_text += TEXT_SECTION in sections

    @staticmethod
    def _take_section(section: str, section_index: int, items, tokens: list[str],
                      quality: list[list[str] | None], correction: str | None,
                      observed_at: int, result: Decoded) -> str | None:
        """Add one section's readings; or return why it cannot be read (nothing added)."""
        if section == "MR":  # 60 two-digit minute amounts, each of the minute ending at
            item, text = items[0], tokens[0]
            if len(text) != 2 * MINUTE_AMOUNTS:
                return (f"section MR has {len(text)} characters, {2 * MINUTE_AMOUNTS} "
                        f"expected (the hour's {MINUTE_AMOUNTS} minute amounts, two digits "
                        "each)")
            cells = [(item, text[2 * minute:2 * minute + 2], minute,
                      observed_at - (MINUTE_AMOUNTS - 1 - minute) * 60_000_000)
                     for minute in range(MINUTE_AMOUNTS)]
        else:
            cells = [(item, token, item_index, observed_at)
                     for item_index, (item, token) in enumerate(zip(items, tokens))]
        readings, skipped = [], 0
        for item, token, quality_index, end in cells:
            if item.scale is None:
                skipped += 1
                continue
            digits = [level[section_index][quality_index] if level else "/"
                      for level in quality]
            flag = " ".join(filter(None, (correction, quality_flag(digits))))
            try:
                readings.append(reading_for(item, token, end, item.period_s, flag or None,
                                            north_is_zero=True))
            except BadValue as exc:
                return f"section {section}: {exc}"
        result.readings.extend(readings)
        result.skipped_text += skipped
        return None

    def _quality(self, sections: dict[str, list[str]], where: dict[str, int], position: int,
                 raw: bytes, result: Decoded) -> list[list[str] | None]:
        """Per level (Q1, Q2, Q3): one digit string per section, or None when absent or
        not one digit per item (then quarantined: the readings go without that level)."""
        levels = []
        for level in QUALITY_SECTIONS:
            groups = sections.get(level)
            if groups is None:
                levels.append(None)
                continue
            sizes = [QUALITY_DIGITS[s] for s in QUALITY_ORDER]
            if [len(g) for g in groups] != sizes:
                result.quarantined.append(Quarantined(
                    position, where[level], f"line {where[level]}: quality section {level} "
                    "does not give one digit per item (groups of "
                    f"{', '.join(map(str, sizes))} digits expected); the readings go without "
                    "it", raw))
                levels.append(None)
                continue
            levels.append(groups)
        return levels


def _sections(lines: list[str], first_line: int
              ) -> tuple[dict[str, list[str]], dict[str, int], list[str]]:
    """Tokens of each section id, the line each starts on, and tokens before any id."""
    sections: dict[str, list[str]] = {}
    where: dict[str, int] = {}
    stray: list[str] = []
    current: list[str] = stray
    for number, line in enumerate(lines, start=first_line):
        for token in line.split():
            if token in SECTION_IDS and (current is not sections.get(TEXT_SECTION)
                                         or token in ("QC", *QUALITY_SECTIONS)):
                current = sections.setdefault(token, [])
                where.setdefault(token, number)
            elif token.rstrip("=") and token != END:  # "=" closes the last section
                current.append(token.rstrip("="))
    if TEXT_SECTION in sections:  # free text: one item
        sections[TEXT_SECTION] = [" ".join(sections[TEXT_SECTION])]
    return sections, where, stray


@hookimpl
def obslink_register_formats(registry):
    registry.add_format(CMAHourlyAdapter)
