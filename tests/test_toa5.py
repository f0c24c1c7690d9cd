"""TOA5 adapter: golden cases, incremental decoding, and robustness to arbitrary bytes.

Golden cases live in tests/golden/toa5/<case>/: input.dat, case.toml (tz, options) and
expected.json. Set OBSLINK_REGENERATE_GOLDEN=1 to rewrite expected.json after a deliberate
change, then review the diff.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from obslink.plugins.formats import AdapterContext
from obslink.plugins.toa5 import TOA5Adapter
from obslink.readings import format_utc, parse_utc_offset

GOLDEN = Path(__file__).parent / "golden" / "toa5"
CASES = sorted(p.name for p in GOLDEN.iterdir() if p.is_dir())


def context_for(case: Path) -> AdapterContext:
    settings_ = tomllib.loads((case / "case.toml").read_text())
    return AdapterContext("TEST", parse_utc_offset(settings_.get("tz", "UTC")),
                          settings_.get("options", {}))


def decode_in_chunks(data: bytes, context: AdapterContext, cuts: list[int]) -> dict:
    """Decode as the directory source does: a fresh adapter per read, state carried over,
    unconsumed bytes read again; the stream ends (final) after the last cut."""
    readings, quarantined, skipped = [], [], 0
    offset, state = 0, None
    for cut in sorted(set(cuts)) + [len(data)]:
        final = cut == len(data)
        while True:
            adapter = TOA5Adapter(context)
            adapter.set_state(state)
            decoded = adapter.decode(data[offset:cut], start=offset, final=final)
            readings += decoded.readings
            quarantined += decoded.quarantined
            skipped += decoded.skipped_text
            offset += decoded.consumed
            state = adapter.get_state()
            if decoded.consumed == 0 or offset >= cut:
                break
    return {
        "readings": [{"observed_at": format_utc(r.observed_at), "element": r.element,
                      "value": r.value, "unit": r.unit, "source_field": r.source_field,
                      "source_flag": r.source_flag, "qc": r.qc} for r in readings],
        "quarantined": [f"byte {q.position}: {q.reason}" for q in quarantined],
        "skipped_text": skipped,
    }


@pytest.mark.parametrize("name", CASES)
def test_golden_case(name):
    case = GOLDEN / name
    actual = decode_in_chunks((case / "input.dat").read_bytes(), context_for(case), [])
    expected_path = case / "expected.json"
    if os.environ.get("OBSLINK_REGENERATE_GOLDEN"):
        expected_path.write_text(json.dumps(actual, indent=1) + "\n")
    assert actual == json.loads(expected_path.read_text())


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(CASES), data=st.data())
def test_any_split_into_reads_gives_the_same_result(name, data):
    case = GOLDEN / name
    raw = (case / "input.dat").read_bytes()
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=8))
    context = context_for(case)
    assert decode_in_chunks(raw, context, cuts) == decode_in_chunks(raw, context, [])


TOA5_LIKE = st.lists(st.sampled_from([
    b'"TOA5","x"\n', b'"TIMESTAMP","RECORD","A"\n', b'"TS","RN","C"\n', b'"","","Smp"\n',
    b'"2025-01-01 00:00:00",1,2.5\n', b'"2025-01-01 00:00:00.5",1,NAN\n', b"\r\n", b'"',
    b",", b"\x00", b"\xff\xfe", b"INF", b"-", b"1e309", b"\n"]), max_size=30).map(b"".join)


@settings(max_examples=int(os.environ.get("OBSLINK_FUZZ_EXAMPLES", 2000)), deadline=None)
@given(payload=st.one_of(st.binary(max_size=2000), TOA5_LIKE), final=st.booleans(),
       offset=st.sampled_from(["UTC", "+14:00", "-12:00"]))
def test_arbitrary_bytes_never_raise(payload, final, offset):
    adapter = TOA5Adapter(AdapterContext("X", parse_utc_offset(offset)))
    decoded = adapter.decode(payload, start=0, final=final)
    assert 0 <= decoded.consumed <= len(payload)
    if final:
        assert decoded.consumed == len(payload)
    json.dumps(adapter.get_state())  # the state must be storable
    for reading in decoded.readings:
        assert reading.value is None or reading.value == reading.value  # no NaN values


def test_element_mapping_renames_and_overrides_unit():
    case = GOLDEN / "hourly_lf"
    context = AdapterContext("S", 60, {}, {"AirT_C": ("air_temperature", "degC"),
                                           "RH_Avg": ("relative_humidity", None)})
    readings = TOA5Adapter(context).decode((case / "input.dat").read_bytes(), start=0,
                                           final=True).readings
    by_field = {r.source_field: r for r in readings}
    assert (by_field["AirT_C"].element, by_field["AirT_C"].unit) == ("air_temperature", "degC")
    assert (by_field["RH_Avg"].element, by_field["RH_Avg"].unit) == ("relative_humidity", "%")
    assert by_field["BattV"].element == "BattV"  # unmapped fields keep their name


def test_sniff_recognises_toa5_and_nothing_else():
    assert TOA5Adapter.sniff(b'"TOA5","x","y"')
    assert TOA5Adapter.sniff(b'\xef\xbb\xbf"TOA5",')
    assert TOA5Adapter.sniff(b'"TIMESTAMP","RECORD"')
    assert not TOA5Adapter.sniff(b'"TOA6","x"')
    assert not TOA5Adapter.sniff(b"##0123QN=2016")
