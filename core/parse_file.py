"""``obslink parse``: decode a logger file the way the agent would, and show the result."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from obslink.errors import ConfigError
from obslink.plugins.formats import AdapterContext, FormatAdapter
from obslink.plugins.registry import load_registry
from obslink.readings import Reading, format_utc, parse_utc_offset

CHUNK_BYTES = 4 * 1024 * 1024
TABLE_HEADER = ("observed_at (UTC)", "element", "value", "unit", "source_field", "flag", "qc")
TABLE_WIDTHS = (27, 22, 12, 10, 20, 6, 2)


def parse_file(path: Path, format_name: str, tz: str, options: dict[str, str], station: str,
               as_json: bool, out=None, err=None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        offset = parse_utc_offset(tz)
    except ValueError as exc:
        raise ConfigError(f"--tz: {exc}") from None
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    registry = load_registry()
    if format_name == "auto":
        adapter_class = sniff_format(path, registry)
        print(f"{path}: looks like {adapter_class.name} ({adapter_class.summary})", file=err)
    else:
        adapter_class = registry.format(format_name)
    adapter = adapter_class(AdapterContext(station, offset, options))
    size = path.stat().st_size
    show_progress = err.isatty() and size > 4 * CHUNK_BYTES
    readings = quarantined = skipped = 0
    if not as_json:
        print(_row(TABLE_HEADER), file=out)
    with open(path, "rb") as stream:
        pending, position = b"", 0
        while True:
            chunk = stream.read(CHUNK_BYTES)
            final = not chunk
            data = pending + chunk
            decoded = adapter.decode(data, start=position, final=final)
            pending = data[decoded.consumed:]
            position += decoded.consumed
            for reading in decoded.readings:
                print(_as_json(reading) if as_json else _as_row(reading), file=out)
            for bad in decoded.quarantined:
                print(f"{path}: quarantined at byte {bad.position}: {bad.reason}", file=err)
            readings += len(decoded.readings)
            quarantined += len(decoded.quarantined)
            skipped += decoded.skipped_text
            if show_progress:
                print(f"\r{path.name}: {position * 100 // max(size, 1)} % "
                      f"({readings} readings)", end="", file=err, flush=True)
            if final:
                break
    if show_progress:
        print(file=err)
    summary = f"{path}: {readings} readings, {quarantined} records quarantined"
    if skipped:
        summary += f", {skipped} items skipped that are not observations (text fields, " \
            "replies, other stations' data)"
    if pending:
        summary += f", {len(pending)} trailing bytes not decoded"
    print(summary, file=err)
    return 0


SNIFF_BYTES = 4096


def sniff_format(path: Path, registry) -> type[FormatAdapter]:
    """The one installed format whose sniff() recognises the file's first bytes."""
    with open(path, "rb") as stream:
        head = stream.read(SNIFF_BYTES)
    matches = [cls for cls in registry.formats.values() if cls.sniff(head)]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(sorted(registry.formats))
    if not matches:
        raise ConfigError(f"{path}: cannot tell the format from its first bytes "
                          f"({head[:40]!r}…); name it with --format (one of: {known})")
    raise ConfigError(f"{path}: looks like several formats "
                      f"({', '.join(sorted(c.name for c in matches))}); name it with --format")


def _as_json(reading: Reading) -> str:
    return json.dumps({"observed_at": format_utc(reading.observed_at),
                       "element": reading.element, "value": reading.value,
                       "unit": reading.unit, "source_field": reading.source_field,
                       "source_flag": reading.source_flag, "qc": reading.qc,
                       "period_s": reading.period_s})


def _as_row(reading: Reading) -> str:
    value = "" if reading.value is None else f"{reading.value:g}"
    cells = (format_utc(reading.observed_at), reading.element, value, reading.unit,
             reading.source_field, reading.source_flag or "", str(reading.qc))
    return _row(cells)


def _row(cells) -> str:
    return " ".join(f"{c:<{w}}" for c, w in zip(cells, TABLE_WIDTHS)).rstrip()
