"""Generic delimited text (CSV, TSV, semicolon-separated) for loggers without a dedicated
adapter. The station config says which column(s) hold the time and how to read it, which
line names the columns, what means "missing", and maps columns onto elements and units.
"""

from __future__ import annotations

import csv
from datetime import datetime, timezone

from obslink.errors import ConfigError
from obslink.plugins.formats import AdapterContext, Decoded, FormatAdapter, Option, Quarantined
from obslink.plugins import hookimpl
from obslink.plugins.text_lines import complete_lines, decode_text
from obslink.readings import (QC_MISSING, QC_NOT_CHECKED, Reading, local_to_utc_us,
                              non_finite_flag, utc_us_from_datetime)

MAX_EPOCH_SECONDS = 253_402_300_800  # 10000-01-01: beyond that no clock is right
DELIMITERS = {",": ",", "comma": ",", "\\t": "\t", "\t": "\t", "tab": "\t", ";": ";",
              "semicolon": ";", "|": "|", "space": " "}


class DelimitedAdapter(FormatAdapter):
    name = "delimited"
    version = "1.0"
    summary = "CSV/TSV files with a column mapping in the config (generic loggers)"
    options = {
        "delimiter": Option(",", "field separator: , tab ; | or space"),
        "skip_lines": Option(0, "lines before the column-name line (a preamble)", int),
        "names_line": Option(True, "the first line after the preamble names the columns; "
                             "false: columns are called 1, 2, 3 …", bool),
        "units_line": Option(False, "the line after the names gives each column's unit",
                             bool),
        "time_columns": Option("1", "column(s) holding the time, by name or 1-based "
                               "position, comma-separated (joined with a space)"),
        "time_format": Option("%Y-%m-%d %H:%M:%S", "strptime format of the joined time "
                              "columns, or iso (ISO 8601, zone optional) or epoch (seconds)"),
        "missing": Option("NAN,NaN,nan,NA,null,-9999,-9999.0,", "comma-separated tokens "
                          "that mean missing (an empty field is one when listed)"),
        "decimal_comma": Option(False, "numbers are written 12,5 (needs another delimiter)",
                                bool),
        "ignore_columns": Option("", "comma-separated columns that are not observations "
                                 "(record numbers, status text)"),
    }

    def __init__(self, context: AdapterContext | None = None) -> None:
        super().__init__(context)
        options = self.option_values
        delimiter = DELIMITERS.get(options["delimiter"], options["delimiter"])
        if len(delimiter) != 1:
            raise ConfigError(f"delimiter {options['delimiter']!r} must be one character "
                              "or one of: comma, tab, semicolon, space")
        self.delimiter = delimiter
        self.missing = set(options["missing"].split(","))
        self.ignore = {c.strip() for c in options["ignore_columns"].split(",") if c.strip()}
        self.header_needed = options["skip_lines"] + options["names_line"] + \
            options["units_line"]
        self.line_number = 0
        self.names: list[str] = []
        self.units: list[str] = []

    def get_state(self) -> dict:
        return {"line": self.line_number, "names": self.names, "units": self.units}

    def set_state(self, state: dict | None) -> None:
        state = state or {}
        self.line_number = int(state.get("line", 0))
        self.names = list(state.get("names", []))
        self.units = list(state.get("units", []))

    def decode(self, data: bytes, *, start: int, final: bool) -> Decoded:
        result = Decoded()
        for line_start, line_end in complete_lines(data, final):
            raw = data[line_start:line_end]
            self.line_number += 1
            self._take_line(raw, start + line_start, result)
            result.consumed = line_end
        return result

    def _take_line(self, raw: bytes, position: int, result: Decoded) -> None:
        text = decode_text(raw).lstrip("\ufeff") if self.line_number == 1 else decode_text(raw)
        if self.line_number <= self.option_values["skip_lines"]:
            return
        if not text.strip():
            return
        try:
            fields = next(csv.reader([text], delimiter=self.delimiter, strict=True))
        except csv.Error as exc:
            self._quarantine(result, position, raw, f"not a delimited line ({exc})")
            return
        fields = [f.strip() for f in fields]
        header_line = self.line_number - self.option_values["skip_lines"]
        names_line = self.option_values["names_line"] and header_line == 1
        units_line = self.option_values["units_line"] and header_line == 1 + \
            self.option_values["names_line"]
        # A record where the names or units line was expected is read as a record, never
        # taken for a header line and lost (a logger that writes no header)
        if (names_line or units_line) and not self._is_record(fields):
            if names_line:
                self.names = fields
            else:
                self.units = fields
            return
        if not self.names:
            self.names = [str(i + 1) for i in range(len(fields))]
        if len(fields) != len(self.names):
            self._quarantine(result, position, raw, f"expected {len(self.names)} fields as "
                             f"in the column names, found {len(fields)}")
            return
        try:
            time_indexes = self._time_indexes()
            observed_at = self._time_us(" ".join(fields[i] for i in time_indexes))
        except ValueError as exc:
            self._quarantine(result, position, raw, str(exc))
            return
        element_map = self.context.element_map
        for index, (name, cell) in enumerate(zip(self.names, fields)):
            if index in time_indexes or name in self.ignore:
                continue
            element, unit = name, self.units[index] if index < len(self.units) else ""
            mapped = element_map.get(name)
            if mapped is not None:
                element, unit = mapped[0], mapped[1] or unit
            if cell in self.missing:
                result.readings.append(Reading(observed_at, element, None, unit, name,
                                               cell or "empty", QC_MISSING))
                continue
            try:
                value = float(cell.replace(",", ".") if self.option_values["decimal_comma"]
                              else cell)
            except ValueError:
                result.skipped_text += 1
                continue
            if non_finite_flag(value) is not None:  # flagged with the file's own token
                result.readings.append(Reading(observed_at, element, None, unit, name, cell,
                                               QC_MISSING))
            else:
                result.readings.append(Reading(observed_at, element, value, unit, name, None,
                                               QC_NOT_CHECKED))

    def _is_record(self, fields: list[str]) -> bool:
        """Whether a line holds a time where the configured time column(s) are: names given
        by position only, since a record has no names."""
        columns = [c.strip() for c in self.option_values["time_columns"].split(",")]
        if not all(c.isdigit() and 0 < int(c) <= len(fields) for c in columns):
            return False
        try:
            self._time_us(" ".join(fields[int(c) - 1] for c in columns))
        except ValueError:
            return False
        return True

    def _time_indexes(self) -> list[int]:
        indexes = []
        for column in self.option_values["time_columns"].split(","):
            column = column.strip()
            if column in self.names:
                indexes.append(self.names.index(column))
            elif column.isdigit() and 0 < int(column) <= len(self.names):
                indexes.append(int(column) - 1)
            else:
                raise ValueError(f"time column {column!r} is not among the columns "
                                 f"({', '.join(self.names)}); set option time_columns")
        return indexes

    def _time_us(self, text: str) -> int:
        time_format = self.option_values["time_format"]
        offset = self.context.utc_offset_minutes
        try:
            if time_format == "epoch":
                seconds = float(text)
                if not -MAX_EPOCH_SECONDS < seconds < MAX_EPOCH_SECONDS:  # also NaN, inf
                    raise ValueError(text)
                return round(seconds * 1_000_000)
            if time_format == "iso":
                moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            else:
                moment = datetime.strptime(text, time_format)
        except ValueError:
            raise ValueError(f"time {text!r} does not match time_format {time_format!r}") \
                from None
        if moment.tzinfo is not None:  # the file states its zone: it wins over the config
            return utc_us_from_datetime(moment.astimezone(timezone.utc))
        return local_to_utc_us(moment, offset)

    def _quarantine(self, result: Decoded, position: int, raw: bytes, reason: str) -> None:
        result.quarantined.append(Quarantined(position, self.line_number,
                                              f"line {self.line_number}: {reason}", raw))


@hookimpl
def obslink_register_formats(registry):
    registry.add_format(DelimitedAdapter)
