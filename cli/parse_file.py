"""``obslink parse``: decode a logger file the way the agent would, run QC, show the result.

Exit codes (``obslink parse --help`` and the README list them): 0 every record was read,
1 a non-empty file gave no reading at all, 2 the command or a config is wrong, 3 readings
were read but some records were quarantined."""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from obslink.errors import ConfigError, FormatError
from obslink.plugins.adapter_guard import GuardedAdapter
from obslink.plugins.formats import AdapterContext, FormatAdapter
from obslink.plugins.qc import QCSettings
from obslink.plugins.qc_limits import default_settings
from obslink.plugins.qc_runner import QCRunner
from obslink.plugins.units import as_stored
from obslink.readings import (QC_FLAG_NAMES, QC_NOT_CHECKED, Reading, format_utc,
                              parse_utc_offset)

CHUNK_BYTES = 4 * 1024 * 1024
EXIT_ALL_READ, EXIT_NOTHING_READ, EXIT_USAGE, EXIT_SOME_QUARANTINED = 0, 1, 2, 3
_LINE_PREFIX = re.compile(r"^line \d+: ")
TABLE_HEADER = ("observed_at (UTC)", "element", "value", "unit", "source_field", "flag", "qc",
                "flagged by")
TABLE_WIDTHS = (27, 22, 12, 10, 20, 6, 2, 30)


@dataclass(frozen=True)
class ParsePlan:
    """What to decode the file with: the adapter, its context, QC settings and a label."""

    adapter_class: type[FormatAdapter]
    context: AdapterContext
    qc: QCSettings
    origin: str


def plan_from_arguments(path: Path, format_name: str | None, tz: str, options: dict[str, str],
                        station: str, registry, err) -> ParsePlan:
    if not format_name:
        raise ConfigError("name the format with --format NAME (or auto), or give the station "
                          "config with --config")
    try:
        offset = parse_utc_offset(tz)
    except ValueError as exc:
        raise ConfigError(f"--tz: {exc}") from None
    if format_name == "auto":
        adapter_class = sniff_format(path, registry)
        print(f"{path}: looks like {adapter_class.name} ({adapter_class.summary})", file=err)
    else:
        adapter_class = registry.format(format_name)
    return ParsePlan(adapter_class, AdapterContext(station, offset, options),
                     default_settings(), "parse")


def plan_from_config(path: Path, config_path: Path, source_name: str | None,
                     format_name: str | None, registry, err) -> ParsePlan:
    """The source of a station config that reads ``path``: its format, options, element
    mapping, UTC offset and the station's QC settings, exactly as the agent runs them."""
    from obslink.agent.config import load_config

    config = load_config(config_path, registry)
    sources = {s.name: s for s in config.sources}
    if source_name is not None:
        if source_name not in sources:
            raise ConfigError(f"--source {source_name!r}: {config_path} has no such source; "
                              f"its sources: {', '.join(sources)}")
        source = sources[source_name]
    elif len(sources) == 1:
        source = next(iter(sources.values()))
    else:
        matching = [s for s in config.sources if _reads(s.settings, path)]
        if len(matching) != 1:
            raise ConfigError(f"{config_path} has several sources ({', '.join(sources)}) and "
                              f"{'none' if not matching else 'more than one'} of them reads "
                              f"{path}; pick one with --source NAME")
        source = matching[0]
    if format_name not in (None, source.format):
        raise ConfigError(f"--format {format_name} contradicts source {source.name!r} of "
                          f"{config_path}, which reads {source.format}; drop --format")
    print(f"{path}: decoding as source {source.name!r} of {config_path} "
          f"({source.format}, station {config.station})", file=err)
    return ParsePlan(registry.format(source.format), source.adapter_context, config.qc,
                     source.name)


def _reads(settings: dict, path: Path) -> bool:
    folder = settings.get("path")
    if not isinstance(folder, str):
        return False
    try:
        path.resolve().relative_to(Path(folder).resolve())
    except ValueError:
        return False
    return True


def parse_file(path: Path, plan: ParsePlan, registry, as_json: bool, out=None,
               err=None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    qc = QCRunner.from_registry(registry, plan.qc)
    adapter = GuardedAdapter(lambda: plan.adapter_class(plan.context))
    adapter.start_stream(path.name)
    size = path.stat().st_size
    show_progress = err.isatty() and size > 4 * CHUNK_BYTES
    readings = skipped = 0
    quarantined: Counter[str] = Counter()  # reasons without their line numbers
    flags: Counter[int] = Counter()
    flagged_by: Counter[str] = Counter()
    fields: set[str] = set()  # source fields the file has
    mistimed: list[int] = []  # times of readings the time check flagged
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
            checked = qc.annotate(as_stored(decoded.readings), plan.origin)
            qc.commit_state()
            for reading in checked:
                failed = _names(qc.names, reading.qc_failed)
                flags[reading.qc] += 1
                flagged_by.update(failed)
                if "time" in failed:
                    mistimed.append(reading.observed_at)
                print(_as_json(reading, qc.names) if as_json else _as_row(reading, failed),
                      file=out)
            fields.update(reading.source_field for reading in decoded.readings)
            for bad in decoded.quarantined:
                where = f"line {bad.line}" if bad.line else f"byte {bad.position}"
                print(f"{path}: quarantined at {where}: {_LINE_PREFIX.sub('', bad.reason)}",
                      file=err)
                quarantined[_LINE_PREFIX.sub("", bad.reason)] += 1
            readings += len(decoded.readings)
            skipped += decoded.skipped_text
            if show_progress:
                print(f"\r{path.name}: {position * 100 // max(size, 1)} % "
                      f"({readings} readings)", end="", file=err, flush=True)
            if final:
                break
    if show_progress:
        print(file=err)
    total_quarantined = sum(quarantined.values())
    summary = f"{path}: {readings} readings, {total_quarantined} records quarantined"
    if skipped:
        summary += f", {skipped} items skipped that are not observations (text fields, " \
            "replies, other stations' data)"
    if pending:
        summary += f", {len(pending)} trailing bytes not decoded"
    print(summary, file=err)
    print(qc_summary(flags, flagged_by, readings), file=err)
    for hint in (mapping_hint(plan.context.element_map, fields, plan.origin),
                 time_hint(mistimed, plan.qc.now())):
        if hint:
            print(hint, file=err)
    if readings == 0 and size > 0:
        print(f"{path}: nothing was read: {why_nothing(quarantined, skipped, pending)}",
              file=err)
        return EXIT_NOTHING_READ
    return EXIT_SOME_QUARANTINED if total_quarantined else EXIT_ALL_READ


def why_nothing(quarantined: Counter, skipped: int, pending: bytes) -> str:
    """Why a non-empty file gave no reading, for a technician."""
    if quarantined:
        reason, count = quarantined.most_common(1)[0]
        others = sum(quarantined.values()) - count
        return (f"{count} record{'s' * (count != 1)} quarantined because {reason}"
                + (f" (and {others} for other reasons, listed above)" if others else ""))
    if skipped:
        return (f"its {skipped} values are text fields or replies, not observations; "
                "check --format")
    if pending:
        return f"its last {len(pending)} bytes are not a complete record"
    return "it holds no records (only header or blank lines)"


def mapping_hint(element_map: dict, fields: set[str], source: str) -> str | None:
    """With a station config: which mapped source fields the file lacks, and which fields
    it has; None when every mapped field occurs (or nothing is mapped)."""
    mapped = set(element_map)
    # a mapping names a column (TOA5, delimited), a code (HJ 212 "a34004" of
    # "a34004-Rtd") or a BUFR key (the part after "#")
    present = fields | {f.partition("-")[0] for f in fields} | \
        {f.rpartition("#")[2] for f in fields}
    missing = sorted(mapped - present)
    if not missing:
        return None
    lead = ("none of the fields" if missing == sorted(mapped) else
            f"{len(missing)} of the {len(mapped)} fields")
    has = ", ".join(sorted(fields)) or "none that are read"
    return (f"{lead} mapped in [sources.{source}.elements] occur in this file: "
            f"{', '.join(missing)} (the file has: {has}); unmapped fields keep their own "
            "names, so QC has no limits for them. Check the spelling (names are "
            "case-sensitive) or the source")


def time_hint(mistimed: list[int], now: int | None) -> str | None:
    """What the time check's flags most often mean in a file: the wrong UTC offset, or a
    logger clock that was never set."""
    if not mistimed or now is None:
        return None
    ahead = [t for t in mistimed if t > now]
    if ahead:
        hours = (max(ahead) - now) / 3_600_000_000
        return (f"{len(ahead)} reading{'s' * (len(ahead) != 1)} dated ahead of this "
                f"machine's clock ({format_utc(now)}), up to {hours:.1f} h: is the file's "
                "UTC offset right (--tz, or [station] utc_offset with --config)? Otherwise "
                "the logger's clock runs ahead and needs setting")
    return (f"{len(mistimed)} reading{'s' * (len(mistimed) != 1)} dated implausibly far back "
            f"(the earliest {format_utc(min(mistimed))}): the logger's clock was probably "
            "never set (a reset logger starts at its epoch)")


def qc_summary(flags: Counter, flagged_by: Counter, total: int) -> str:
    parts = [f"{flags[flag]} {name}" for flag, name in QC_FLAG_NAMES.items() if flags[flag]]
    text = "QC: " + (", ".join(parts) or "no readings")
    if flagged_by:
        text += "; flagged by " + ", ".join(f"{name} {count}"
                                            for name, count in flagged_by.most_common())
    if total:
        text += f"; coverage {100 * (total - flags[QC_NOT_CHECKED]) / total:.1f} %"
    return text


def _names(names: list[str], mask: int) -> list[str]:
    return [name for bit, name in enumerate(names) if mask >> bit & 1] if mask else []


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
        raise FormatError(f"{path}: cannot tell the format from its first bytes "
                          f"({head[:40]!r}…); name it with --format (one of: {known})")
    raise FormatError(f"{path}: looks like several formats "
                      f"({', '.join(sorted(c.name for c in matches))}); name it with --format")


def _as_json(reading: Reading, names: list[str]) -> str:
    return json.dumps({"observed_at": format_utc(reading.observed_at),
                       "element": reading.element, "value": reading.value,
                       "unit": reading.unit, "source_unit": reading.source_unit,
                       "source_field": reading.source_field,
                       "source_flag": reading.source_flag, "qc": reading.qc,
                       "period_s": reading.period_s,
                       "qc_ran": _names(names, reading.qc_ran),
                       "qc_failed": _names(names, reading.qc_failed)})


def _as_row(reading: Reading, failed: list[str]) -> str:
    value = "" if reading.value is None else f"{reading.value:g}"
    cells = (format_utc(reading.observed_at), reading.element, value, reading.unit,
             reading.source_field, reading.source_flag or "", str(reading.qc),
             ",".join(failed))
    return _row(cells)


def _row(cells) -> str:
    return " ".join(f"{c:<{w}}" for c, w in zip(cells, TABLE_WIDTHS)).rstrip()
