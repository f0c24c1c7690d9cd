"""Golden cases for format adapters, shared by every adapter's tests.

A case is a folder: an input file (input.*), case.toml (tz, [options]) and expected.json.
Set OBSLINK_REGENERATE_GOLDEN=1 to rewrite expected.json after a deliberate change, then
review the diff.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

from obslink.plugins.formats import AdapterContext
from obslink.readings import format_utc, parse_utc_offset

GOLDEN = Path(__file__).parent / "golden"


def case_names(format_name: str) -> list[str]:
    return sorted(p.name for p in (GOLDEN / format_name).iterdir() if p.is_dir())


def case_input(case: Path) -> bytes:
    return next(case.glob("input.*")).read_bytes()


def stream_name(case: Path) -> str:
    """The file name the case's input had in the field (some formats date records by it)."""
    return tomllib.loads((case / "case.toml").read_text()).get("stream",
                                                                 case_input_name(case))


def case_input_name(case: Path) -> str:
    return next(case.glob("input.*")).name


def context_for(case: Path) -> AdapterContext:
    settings = tomllib.loads((case / "case.toml").read_text())
    return AdapterContext("TEST", parse_utc_offset(settings.get("tz", "UTC")),
                          settings.get("options", {}))


def decode_in_chunks(adapter_class, data: bytes, context: AdapterContext,
                     cuts: list[int], stream: str = "input") -> dict:
    """Decode as a source does: a fresh adapter per read, state carried over, unconsumed
    bytes fed again; the stream ends (final) after the last cut."""
    readings, quarantined, replies, skipped = [], [], [], 0
    offset, state = 0, None
    for cut in sorted(set(cuts)) + [len(data)]:
        final = cut == len(data)
        while True:
            adapter = adapter_class(context)
            adapter.set_state(state)
            if offset == 0:
                adapter.start_stream(stream)
            decoded = adapter.decode(data[offset:cut], start=offset, final=final)
            readings += decoded.readings
            quarantined += decoded.quarantined
            replies += decoded.replies
            skipped += decoded.skipped_text
            offset += decoded.consumed
            state = adapter.get_state()
            if decoded.consumed == 0 or offset >= cut:
                break
    result = {
        "readings": [{"observed_at": format_utc(r.observed_at), "element": r.element,
                      "value": r.value, "unit": r.unit, "source_unit": r.source_unit,
                      "source_field": r.source_field,
                      "source_flag": r.source_flag, "qc": r.qc, "period_s": r.period_s}
                     for r in readings],
        "quarantined": [f"byte {q.position}: {q.reason}" for q in quarantined],
        "skipped": skipped,
    }
    if replies:
        result["replies"] = [reply.decode("ascii", "replace") for reply in replies]
    return result


def check_golden_case(adapter_class, format_name: str, name: str) -> None:
    case = GOLDEN / format_name / name
    actual = decode_in_chunks(adapter_class, case_input(case), context_for(case), [],
                              stream_name(case))
    expected_path = case / "expected.json"
    if os.environ.get("OBSLINK_REGENERATE_GOLDEN"):
        expected_path.write_text(json.dumps(actual, indent=1, ensure_ascii=False) + "\n")
    assert actual == json.loads(expected_path.read_text())
