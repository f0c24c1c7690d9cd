"""Campbell Scientific TOA5: the ASCII table files written by CR1000X, CR6, CR300 … loggers.

Layout: an environment line (``"TOA5",station,model,serial,os,program,signature,table``),
then field names, units and processing lines, then one comma-separated record per line
with a quoted ``TIMESTAMP`` in logger-local time. Some writers omit the environment line;
a header can repeat mid-file after a program change. Missing values are ``NAN`` (and
``INF``/``-INF``/``None`` from some writers). ``TIMESTAMP`` and ``RECORD`` are not
observations; text cells (labels, time-of-maximum columns) are counted and skipped.
"""

from __future__ import annotations

import csv
from datetime import date

from obslink.plugins.formats import AdapterContext, Decoded, FormatAdapter, Quarantined
from obslink.plugins import hookimpl
from obslink.plugins.text_lines import complete_lines, decode_text
from obslink.plugins.units import column_unit
from obslink.readings import QC_MISSING, QC_NOT_CHECKED, Reading, non_finite_flag

MISSING_TOKENS = {"NAN": "NAN", "NaN": "NAN", "nan": "NAN", "INF": "INF", "+INF": "INF",
                  "-INF": "-INF", "None": "None", "": "empty"}
NOT_OBSERVATIONS = {"TIMESTAMP", "RECORD"}
_US_PER_DAY = 86_400_000_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


class TimestampError(ValueError):
    pass


class TOA5Adapter(FormatAdapter):
    name = "toa5"
    version = "1.0"
    summary = "Campbell Scientific TOA5 ASCII table files (CR1000X, CR6, CR300, …)"

    def __init__(self, context: AdapterContext | None = None) -> None:
        super().__init__(context)
        self.header: list[list[str]] = []  # the header lines read so far (names, units, …)
        self.header_complete = False
        self.line_number = 0
        self._day_cache: dict[str, int] = {}
        self._plan: tuple[int, list[tuple[int, str, str, str]]] | None = None

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return head.lstrip(b"\xef\xbb\xbf").startswith((b'"TOA5"', b'"TIMESTAMP"'))

    def get_state(self) -> dict:
        return {"header": self.header, "complete": self.header_complete,
                "line": self.line_number}

    def set_state(self, state: dict | None) -> None:
        state = state or {}
        self.header = [list(row) for row in state.get("header", [])]
        self.header_complete = bool(state.get("complete", False))
        self.line_number = int(state.get("line", 0))
        self._plan = None

    def decode(self, data: bytes, *, start: int, final: bool) -> Decoded:
        result = Decoded()
        for line_start, line_end in complete_lines(data, final):
            self._take_line(data[line_start:line_end], start + line_start, result,
                            at_end=final and line_end == len(data), final=final)
            result.consumed = line_end
        return result

    # -- one line --------------------------------------------------------------------------

    def _take_line(self, raw: bytes, position: int, result: Decoded, *, at_end: bool,
                   final: bool) -> None:
        text = decode_text(raw)
        if self.line_number == 0:
            text = text.lstrip("\ufeff")
        if not text.strip():
            self.line_number += 1
            return
        quoting_known = True
        try:
            # Unquoted fields come back as floats (converted in C), quoted ones as text: a
            # TOA5 writer quotes strings and NAN, never numbers.
            fields = next(csv.reader([text], quoting=csv.QUOTE_NONNUMERIC, strict=True))
        except ValueError:  # an unquoted non-number (INF, an empty field, garbage)
            quoting_known = False
            try:
                fields = next(csv.reader([text], strict=True))
            except csv.Error as exc:
                fields, error = None, exc
        except csv.Error as exc:
            fields, error = None, exc
        if fields is None:
            self.line_number += 1
            reason = f"not a comma-separated line ({error})"
            if not self.header_complete and self.header:
                reason += "; the header is incomplete, records wait for the next header"
                self.header = []  # a later line must not be taken as the wrong header line
            self._quarantine(result, position, raw, reason)
            return
        # a new header starts (mid-file too, after a program change); field names right
        # after the environment line continue its header
        if fields and (fields[0] == "TOA5" or (fields[0] == "TIMESTAMP" and not (
                len(self.header) == 1 and self.header[0][0] == "TOA5"))):
            self.header = []
            self.header_complete = False
        if not self.header_complete:
            self._take_header_line(fields, raw, position, result, at_end, final)
            return
        self.line_number += 1
        self._take_record(fields, raw, position, result, truncated=at_end and final
                          and not raw.endswith(b"\n"), quoting_known=quoting_known)

    def _take_header_line(self, fields, raw, position, result, at_end, final) -> None:
        if len(self.header) >= 2 and self._is_record(fields):
            # A record where the units or processing line belongs: the writer left those
            # lines out. Its records are kept here, with the reason, never taken for header.
            self.line_number += 1
            found = ["field names", "units"][:len(self.header) - 1]
            if self.header[0] != ["TOA5"]:  # a real environment line, not the stand-in
                found.insert(0, "environment")
            self._quarantine(result, position, raw,
                             f"a data record where TOA5 has its "
                             f"{('units', 'processing')[len(self.header) - 2]} line: the "
                             f"file has {len(found)} header line{'s' * (len(found) != 1)} "
                             f"({', '.join(found)}) before the data; TOA5 has 3 or 4 "
                             "(environment, field names, units, processing): try --format "
                             "delimited (option time_columns = TIMESTAMP)")
            return
        fields = [f if isinstance(f, str) else _number_text(f) for f in fields]
        if not self.header:
            if fields[0] == "TOA5":
                self.header.append(fields)
            elif fields[0] == "TIMESTAMP":
                self.header.extend([["TOA5"], fields])  # the variant without environment line
            else:
                self.line_number += 1
                self._quarantine(result, position, raw,
                                 "no TOA5 header before this line (expected a line starting "
                                 'with "TOA5" or "TIMESTAMP")')
                return
        else:
            self.header.append(fields)
        self.line_number += 1
        if len(self.header) < 4:
            if at_end and final:
                self._quarantine(result, position, raw,
                                 f"file ends inside the TOA5 header ({len(self.header)} of 4 "
                                 "header lines)")
            return
        names, units, processing = self.header[1], self.header[2], self.header[3]
        if not (len(names) == len(units) == len(processing)):
            self._quarantine(result, position, raw,
                             f"TOA5 header lines disagree: {len(names)} names, {len(units)} "
                             f"units, {len(processing)} processing entries")
            self.header = []
            return
        if len(set(names)) != len(names):
            duplicate = next(n for n in names if names.count(n) > 1)
            self._quarantine(result, position, raw,
                             f"TOA5 header names field {duplicate!r} twice")
            self.header = []
            return
        if "TIMESTAMP" not in names:
            self._quarantine(result, position, raw, "TOA5 header has no TIMESTAMP field")
            self.header = []
            return
        self.header_complete = True
        self._plan = None  # a new header: columns are planned again at the next record

    def _is_record(self, fields: list) -> bool:
        """Whether a line after the field names is a record: an unquoted number (header
        lines quote every entry), or a timestamp in the TIMESTAMP column."""
        names = self.header[1]
        if len(fields) != len(names) or any(isinstance(f, float) for f in fields):
            return len(fields) == len(names)
        stamp = fields[names.index("TIMESTAMP")] if "TIMESTAMP" in names else fields[0]
        try:
            self._timestamp_us(stamp)
        except TimestampError:
            return False
        return True

    def _take_record(self, fields, raw, position, result, truncated: bool,
                     quoting_known: bool) -> None:
        names = self.header[1]
        if len(fields) != len(names):
            hint = " (truncated line?)" if truncated or len(fields) < len(names) else ""
            self._quarantine(result, position, raw,
                             f"expected {len(names)} fields as in the header, found "
                             f"{len(fields)}{hint}")
            return
        time_index, columns = self._plan or self._make_plan()
        try:
            stamp = fields[time_index]
            if not isinstance(stamp, str):
                raise TimestampError(f"timestamp {_number_text(stamp)} is not quoted text "
                                     "YYYY-MM-DD HH:MM:SS[.fff]")
            observed_at = self._timestamp_us(stamp)
        except TimestampError as exc:
            self._quarantine(result, position, raw, str(exc))
            return
        readings = result.readings
        quoted: list[bool] = []
        for column, name, element, unit, source_unit in columns:
            cell = fields[column]
            if isinstance(cell, float):
                value = cell
            else:
                flag = MISSING_TOKENS.get(cell.strip())
                if not cell and quoting_known and b'""' in raw:
                    # "" quoted is an empty text field; only an unquoted empty one is missing
                    quoted = quoted or _quoted_fields(raw)
                    flag = None if column < len(quoted) and quoted[column] else flag
                if flag is not None:
                    readings.append(Reading(observed_at, element, None, unit, name, flag,
                                            QC_MISSING, None, 0, 0, source_unit))
                    continue
                if quoting_known:  # quoted: a label, a time-of-maximum …, not a value
                    result.skipped_text += 1
                    continue
                try:
                    value = float(cell)
                except ValueError:
                    result.skipped_text += 1
                    continue
            flag = non_finite_flag(value)
            if flag is not None:
                readings.append(Reading(observed_at, element, None, unit, name, flag,
                                        QC_MISSING, None, 0, 0, source_unit))
                continue
            readings.append(Reading(observed_at, element, value, unit, name, None,
                                    QC_NOT_CHECKED, None, 0, 0, source_unit))

    def _make_plan(self) -> tuple[int, list[tuple[int, str, str, str, str | None]]]:
        """From the header, once: the TIMESTAMP column and each observation column's
        (position, field name, element, unit, the unit as the file spells it if renamed)."""
        names, units = self.header[1], self.header[2]
        element_map = self.context.element_map
        columns = []
        for column, name in enumerate(names):
            if name in NOT_OBSERVATIONS:
                continue
            element, unit = name, units[column].strip()
            mapped = element_map.get(name)
            if mapped is not None:
                element, unit = mapped[0], mapped[1] or unit
            columns.append((column, name, element, *column_unit(element, unit)))
        self._plan = names.index("TIMESTAMP"), columns
        return self._plan

    def _timestamp_us(self, text: str) -> int:
        """``YYYY-MM-DD HH:MM:SS[.f…]`` in logger-local time → µs since the epoch (UTC)."""
        day_text, _, clock = text.strip().partition(" ")
        day_us = self._day_cache.get(day_text)
        try:
            if day_us is None:
                day_us = (date.fromisoformat(day_text).toordinal() - _EPOCH_ORDINAL) * _US_PER_DAY
                if len(day_text) != 10:
                    raise ValueError
                self._day_cache[day_text] = day_us
            whole, _, fraction = clock.partition(".")
            hours, minutes, seconds = whole.split(":")
            if not (len(hours) == len(minutes) == len(seconds) == 2) or (
                fraction and not fraction.isdigit()):
                raise ValueError
            h, m, s = int(hours), int(minutes), int(seconds)
            if h > 23 or m > 59 or s > 60:
                raise ValueError
            micro = int((fraction + "000000")[:6]) if fraction else 0
        except ValueError:
            raise TimestampError(
                f"timestamp {text!r} is not YYYY-MM-DD HH:MM:SS[.fff]") from None
        local = day_us + ((h * 60 + m) * 60 + s) * 1_000_000 + micro
        return local - self.context.utc_offset_minutes * 60_000_000

    def _quarantine(self, result: Decoded, position: int, raw: bytes, reason: str) -> None:
        result.quarantined.append(
            Quarantined(position, self.line_number, f"line {self.line_number}: {reason}", raw))


def _quoted_fields(raw: bytes) -> list[bool]:
    """Which comma-separated fields of a line were quoted (for the rare empty ones)."""
    quoted, in_quotes, at_start = [], False, True
    for char in raw.rstrip(b"\r\n"):
        if at_start:
            quoted.append(char == 0x22)
            at_start = False
            if char == 0x22:
                in_quotes = True
                continue
        if char == 0x22:
            in_quotes = not in_quotes
        elif char == 0x2C and not in_quotes:
            at_start = True
    if at_start:
        quoted.append(False)
    return quoted


def _number_text(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


@hookimpl
def obslink_register_formats(registry):
    registry.add_format(TOA5Adapter)
