"""Campbell Scientific TOB1: binary table files (CR1000X, CR6 … ``TableFile`` format 0).

Five ASCII header lines (environment, field names, units, processing, data types), then
fixed-size records, little-endian except FP2. Times are seconds and nanoseconds since
1990-01-01 in logger-local time. Values equal the vendor's own TOA5 conversion of the same
file: IEEE4 and IEEE8 with the 7 and 15 significant digits the vendor prints, FP2 exact.
Strings, BOOL8 bit patterns and SecNano time stamps are not observations (TOA5 quotes them).
"""

from __future__ import annotations

import csv
import re
import struct
from datetime import datetime

from obslink.plugins.formats import AdapterContext, Decoded, FormatAdapter, Quarantined
from obslink.plugins import hookimpl
from obslink.plugins.units import column_unit
from obslink.readings import (QC_MISSING, QC_NOT_CHECKED, Reading, non_finite_flag,
                              utc_us_from_datetime)

EPOCH_1990_US = utc_us_from_datetime(datetime.fromisoformat("1990-01-01T00:00:00+00:00"))
# data type -> (struct code, how its value becomes a reading: number, fp2, text, bool, skip)
TYPES = {
    "ULONG": ("I", "int"), "LONG": ("i", "int"), "USHORT": ("H", "int"),
    "SHORT": ("h", "int"), "BYTE": ("B", "int"),
    # Campbell's UINT/INT types are stored big-endian even in TOB1 (checked against the
    # vendor's own conversion); they are read as bytes and converted.
    "UINT2": ("2s", "uint_be"), "UINT4": ("4s", "uint_be"),
    "INT2": ("2s", "int_be"), "INT4": ("4s", "int_be"),
    "IEEE4": ("f", "ieee4"), "IEEE4L": ("f", "ieee4"), "IEEE8": ("d", "ieee8"),
    "IEEE8L": ("d", "ieee8"),
    "FP2": ("H", "fp2"),
    "BOOL": ("B", "bool"), "BOOL2": ("H", "bool"), "BOOL4": ("I", "bool"),
    "BOOL8": ("B", "text"),
    "SECNANO": ("Q", "text"), "NSEC": ("Q", "text"),
}
NOT_OBSERVATIONS = {"SECONDS", "NANOSECONDS", "RECORD"}
ASCII_TYPE = re.compile(r"^ASCII\((\d+)\)$")


FP2_SENTINELS = {0x9FFE: "NAN", 0x1FFF: "INF", 0x9FFF: "-INF"}


def fp2_value(raw: int) -> float | None:
    """Campbell FP2 (given as big-endian uint16): sign, 2-bit decimal exponent, 13-bit
    mantissa. The NAN and ±INF sentinels (FP2_SENTINELS) are missing values (None)."""
    if raw in FP2_SENTINELS:
        return None
    mantissa = raw & 0x1FFF
    value = mantissa / (1, 10, 100, 1000)[(raw >> 13) & 0x3]
    return -value if raw & 0x8000 else value


class TOB1Adapter(FormatAdapter):
    name = "tob1"
    version = "1.0"
    summary = "Campbell Scientific TOB1 binary table files"

    def __init__(self, context: AdapterContext | None = None) -> None:
        super().__init__(context)
        self.header: list[list[str]] = []
        self.layout: struct.Struct | None = None
        self.records = 0
        self.broken = False

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return head.startswith(b'"TOB1"')

    def get_state(self) -> dict:
        return {"header": self.header, "records": self.records, "broken": self.broken}

    def set_state(self, state: dict | None) -> None:
        state = state or {}
        self.header = [list(line) for line in state.get("header", [])]
        self.records = int(state.get("records", 0))
        self.broken = bool(state.get("broken", False))
        self.layout = None
        if len(self.header) == 5 and not self.broken:
            self._make_layout()

    def decode(self, data: bytes, *, start: int, final: bool) -> Decoded:
        result = Decoded()
        offset = 0
        if len(self.header) < 5 and not self.broken:
            offset = self._take_header(data, start, final, result)
        if self.broken:
            return self._unread(data, offset, start, final, result)
        if len(self.header) < 5 or self.layout is None:
            result.consumed = offset
            return result
        size = self.layout.size
        count = (len(data) - offset) // size
        end = offset + count * size
        for values in self.layout.iter_unpack(data[offset:end]):
            self._take_record(values, result)
        self.records += count
        result.consumed = end
        if final and end < len(data):
            result.quarantined.append(Quarantined(
                start + end, None, f"record {self.records + 1}: file ends {len(data) - end} "
                f"bytes into a {size}-byte record (truncated)", data[end:]))
            result.consumed = len(data)
        return result

    def _take_header(self, data: bytes, start: int, final: bool, result: Decoded) -> int:
        offset = line_start = 0
        while len(self.header) < 5:
            line_start = offset
            newline = data.find(b"\r\n", offset)
            if newline < 0:
                if final:
                    result.quarantined.append(Quarantined(
                        start + offset, len(self.header) + 1, "file ends inside the TOB1 "
                        f"header ({len(self.header)} of 5 lines)", data[offset:]))
                    return len(data)
                return offset
            line = data[offset:newline].decode("ascii", "replace")
            try:
                fields = next(csv.reader([line], strict=True))
            except (csv.Error, StopIteration) as exc:
                fields = []
                problem = f"not a comma-separated line ({exc})"
            else:
                problem = None
            if not self.header and (not fields or fields[0] != "TOB1"):
                problem = problem or 'no TOB1 header (expected a line starting with "TOB1")'
            if problem:
                return self._broken(result, start + offset, len(self.header) + 1, problem,
                                    data[offset:newline + 2], newline + 2)
            self.header.append(fields)
            offset = newline + 2
        problem = self._make_layout()
        if problem:  # reported at the data-type line, wherever the read began
            return self._broken(result, start + line_start, 5, problem,
                                data[line_start:offset], offset)
        return offset

    def _broken(self, result, position, line, problem, raw, end) -> int:
        result.quarantined.append(Quarantined(
            position, line, f"header: {problem}; the records after it are kept unread",
            raw))
        self.broken = True
        return end

    @staticmethod
    def _unread(data: bytes, offset: int, start: int, final: bool,
                result: Decoded) -> Decoded:
        """Records after a header that cannot be read cannot be told apart: at the end of
        the stream they are quarantined whole, with the reason."""
        if not final:
            result.consumed = offset
            return result
        if offset < len(data):
            result.quarantined.append(Quarantined(
                start + offset, None, f"{len(data) - offset} bytes of records after a TOB1 "
                "header obslink cannot read (the header's quarantined record says why)",
                data[offset:]))
        result.consumed = len(data)
        return result

    def _make_layout(self) -> str | None:
        names, types = self.header[1], self.header[4]
        if not (len(names) == len(types) == len(self.header[2]) == len(self.header[3])):
            return "the header lines have different numbers of fields"
        codes, kinds = ["<"], []
        for name, data_type in zip(names, types):
            ascii_match = ASCII_TYPE.match(data_type.upper())
            if ascii_match:
                codes.append(f"{ascii_match.group(1)}s")
                kinds.append("text")
            elif data_type.upper() in TYPES:
                code, kind = TYPES[data_type.upper()]
                codes.append(code)
                kinds.append(kind)
            else:
                return (f"field {name!r} has data type {data_type!r}, which obslink cannot "
                        "read yet; have the logger write this table as TOA5 (TableFile "
                        "format 1) or change the field's data type in the logger program")
        if "SECONDS" not in names or "NANOSECONDS" not in names:
            return "no SECONDS and NANOSECONDS fields"
        self.layout = struct.Struct("".join(codes))
        self._plan = (names.index("SECONDS"), names.index("NANOSECONDS"),
                      self._observation_fields(kinds))
        self._text_fields = sum(1 for name, kind in zip(names, kinds)
                                if kind == "text" and name not in NOT_OBSERVATIONS)
        return None

    def _observation_fields(self, kinds: list[str]
                            ) -> list[tuple[int, str, str, str, str | None, str]]:
        """(position, field name, element, unit, the unit as the file spells it if renamed,
        kind) of each field that is an observation, worked out once per header."""
        element_map = self.context.element_map
        fields = []
        for index, (name, unit, kind) in enumerate(zip(self.header[1], self.header[2], kinds)):
            if name in NOT_OBSERVATIONS or kind == "text":
                continue
            mapped = element_map.get(name)
            element = mapped[0] if mapped else name
            fields.append((index, name, element,
                           *column_unit(element, mapped[1] if mapped and mapped[1] else unit),
                           kind))
        return fields

    def _take_record(self, values: tuple, result: Decoded) -> None:
        seconds_at, nanoseconds_at, fields = self._plan
        observed_at = (EPOCH_1990_US + values[seconds_at] * 1_000_000
                       + values[nanoseconds_at] // 1000
                       - self.context.utc_offset_minutes * 60_000_000)
        result.skipped_text += self._text_fields
        for index, name, element, unit, source_unit, kind in fields:
            raw = values[index]
            flag = None
            if kind == "fp2":
                raw = ((raw & 0xFF) << 8) | (raw >> 8)  # stored big-endian
                value = fp2_value(raw)
                flag = FP2_SENTINELS.get(raw)
            elif kind == "ieee4":
                value = float(f"{raw:.7g}")
            elif kind == "ieee8":
                value = float(f"{raw:.15g}")
            elif kind == "bool":
                value = -1.0 if raw else 0.0  # as the vendor's TOA5 conversion writes it
            elif kind == "uint_be":
                value = float(int.from_bytes(raw, "big"))
            elif kind == "int_be":
                value = float(int.from_bytes(raw, "big", signed=True))
            else:
                value = float(raw)
            not_a_value = None if value is None else non_finite_flag(value)
            if not_a_value is not None:
                flag, value = not_a_value, None
            result.readings.append(Reading(observed_at, element, value, unit, name, flag,
                                           QC_MISSING if value is None else QC_NOT_CHECKED,
                                           None, 0, 0, source_unit))


@hookimpl
def obslink_register_formats(registry):
    registry.add_format(TOB1Adapter)
