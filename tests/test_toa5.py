"""TOA5 adapter specifics (golden cases and split reads: test_adapter_contract.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from obslink.plugins.formats import AdapterContext
from obslink.plugins.toa5 import TOA5Adapter
from obslink.readings import parse_utc_offset

GOLDEN = Path(__file__).parent / "golden" / "toa5"


TOA5_LIKE = st.lists(st.sampled_from([
    b'"TOA5","x"\n', b'"TIMESTAMP","RECORD","A"\n', b'"TS","RN","C"\n', b'"","","Smp"\n',
    b'"2025-01-01 00:00:00",1,2.5\n', b'"2025-01-01 00:00:00.5",1,NAN\n', b"\r\n", b'"',
    b",", b"\x00", b"\xff\xfe", b"INF", b"-", b"1e309", b"\n"]), max_size=30).map(b"".join)


@settings(max_examples=int(os.environ.get("OBSLINK_ADAPTER_FUZZ_EXAMPLES", 10_000)),
          deadline=None)
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
