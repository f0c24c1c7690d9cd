"""Writes TOB1 files (and the TOA5 text the vendor's converter prints for them): simulated
Campbell loggers for tests, benchmarks and demos."""

from __future__ import annotations

import struct
from datetime import datetime, timezone

EPOCH_1990 = datetime(1990, 1, 1, tzinfo=timezone.utc)
NAN = float("nan")


def fp2_bytes(value: float) -> bytes:
    """Encode a number as Campbell FP2 (big-endian); NaN and ±inf use the sentinels."""
    if value != value:
        return b"\x9f\xfe"
    if value in (float("inf"), float("-inf")):
        return b"\x1f\xff" if value > 0 else b"\x9f\xff"
    sign = 0x8000 if value < 0 or str(value).startswith("-") else 0
    for exponent in (3, 2, 1, 0):
        mantissa = round(abs(value) * 10 ** exponent)
        if mantissa <= 8190:
            return (sign | exponent << 13 | mantissa).to_bytes(2, "big")
    raise ValueError(f"{value} does not fit FP2")


def fp2_text(value: float) -> str:
    raw = int.from_bytes(fp2_bytes(value), "big")
    if raw in (0x9FFE, 0x1FFF, 0x9FFF):
        return {0x9FFE: '"NAN"', 0x1FFF: "INF", 0x9FFF: "-INF"}[raw]
    exponent = (raw >> 13) & 3
    number = (raw & 0x1FFF) / 10 ** exponent
    return f"{-number if raw & 0x8000 else number:g}"


ENCODERS = {
    "ULONG": lambda v: (struct.pack("<I", v), str(v)),
    "LONG": lambda v: (struct.pack("<i", v), str(v)),
    "UINT2": lambda v: (v.to_bytes(2, "big"), str(v)),
    "UINT4": lambda v: (v.to_bytes(4, "big"), str(v)),
    "INT2": lambda v: (v.to_bytes(2, "big", signed=True), str(v)),
    "IEEE4": lambda v: (struct.pack("<f", v),
                        '"NAN"' if v != v else f"{struct.unpack('<f', struct.pack('<f', v))[0]:.7g}"),
    "IEEE8": lambda v: (struct.pack("<d", v), '"NAN"' if v != v else f"{v:.15g}"),
    "FP2": lambda v: (fp2_bytes(v), fp2_text(v)),
    "BOOL": lambda v: (bytes([255 if v else 0]), "-1" if v else "0"),
    "BOOL8": lambda v: (bytes([v]), f'"{v:08b}"'),
}


def tob1_header(fields: list[tuple[str, str, str]], table: str = "Test") -> bytes:
    """The five header lines of a TOB1 file whose ``fields`` are (name, unit, type) after
    SECONDS, NANOSECONDS and RECORD."""
    names = ["SECONDS", "NANOSECONDS", "RECORD"] + [f[0] for f in fields]
    units = ["SECONDS", "NANOSECONDS", "RN"] + [f[1] for f in fields]
    types = ["ULONG", "ULONG", "ULONG"] + [f[2] for f in fields]
    environment = ["TOB1", "T1", "CR1000X", "1", "CR1000X.Std.08.01", "CPU:test.cr1x", "1",
                   table]
    return ("\r\n".join([_quote(environment), _quote(names), _quote(units),
                          _quote([""] * len(names)), _quote(types)]) + "\r\n").encode()


def tob1_record(fields: list[tuple[str, str, str]], moment: datetime, record: int,
                values: list) -> tuple[bytes, str]:
    """One record (logger-local ``moment``): its bytes and its line in the TOA5 conversion."""
    delta = moment.replace(tzinfo=timezone.utc) - EPOCH_1990
    seconds = delta.days * 86_400 + delta.seconds
    binary = bytearray(struct.pack("<III", seconds, delta.microseconds * 1000, record))
    cells = []
    for (_name, _unit, data_type), value in zip(fields, values):
        if data_type.startswith("ASCII("):
            size = int(data_type[6:-1])
            binary += value.encode().ljust(size, b"\0")[:size]
            cells.append(f'"{value}"')
        else:
            encoded, text = ENCODERS[data_type](value)
            binary += encoded
            cells.append(text)
    stamp = moment.strftime("%Y-%m-%d %H:%M:%S") + (
        f".{moment.microsecond:06d}".rstrip("0") if moment.microsecond else "")
    return bytes(binary), f'"{stamp}",{record},' + ",".join(cells)


def write_tob1(fields: list[tuple[str, str, str]], rows: list[tuple[datetime, list]],
               table: str = "Test") -> tuple[bytes, str]:
    """``fields``: (name, unit, type) after SECONDS/NANOSECONDS/RECORD; ``rows``: (local
    time, values). Returns the TOB1 bytes and the TOA5 text of the same table."""
    binary = bytearray(tob1_header(fields, table))
    names = [f[0] for f in fields]
    environment = ["TOA5", "T1", "CR1000X", "1", "CR1000X.Std.08.01", "CPU:test.cr1x", "1",
                   table]
    toa5 = [_quote(environment), _quote(["TIMESTAMP", "RECORD"] + names),
            _quote(["TS", "RN"] + [f[1] for f in fields]),
            _quote(["", ""] + [""] * len(fields))]
    for record, (moment, values) in enumerate(rows):
        data, line = tob1_record(fields, moment, record, values)
        binary += data
        toa5.append(line)
    return bytes(binary), "\r\n".join(toa5) + "\r\n"


def _quote(items) -> str:
    return ",".join(f'"{item}"' for item in items)
