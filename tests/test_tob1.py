"""TOB1 adapter specifics (golden cases and split reads: test_adapter_contract.py)."""

from __future__ import annotations

import os
from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from obslink.plugins.formats import AdapterContext
from obslink.plugins.toa5 import TOA5Adapter
from obslink.plugins.tob1 import TOB1Adapter, fp2_value
from tests.golden.tob1.make_inputs import ALL_TYPES, ALL_VALUES
from obslink.demo.simulated_tob1 import write_tob1

ADAPTER_FUZZ = int(os.environ.get("OBSLINK_ADAPTER_FUZZ_EXAMPLES", 10_000))


def comparable(readings):
    return [(r.observed_at, r.element, r.value, r.unit, r.source_field, r.source_flag, r.qc)
            for r in readings]


def test_readings_equal_those_of_the_toa5_conversion_of_the_same_table():
    """The vendor's converter prints a TOB1 table as TOA5; both must give the same readings."""
    rows = [(datetime(2026, 2, 19, 9, 45, second, micro), values)
            for second, micro, values in zip((1, 2, 3, 4), (5000, 50000, 0, 123000),
                                             ALL_VALUES)]
    binary, toa5 = write_tob1(ALL_TYPES, rows)
    context = AdapterContext("S", -300)
    from_tob1 = TOB1Adapter(context).decode(binary, start=0, final=True)
    from_toa5 = TOA5Adapter(context).decode(toa5.encode(), start=0, final=True)
    assert not from_tob1.quarantined and not from_toa5.quarantined
    assert comparable(from_tob1.readings) == comparable(from_toa5.readings)
    assert from_tob1.skipped_text == from_toa5.skipped_text == 8  # BOOL8 and ASCII


def test_fp2_decoding_is_exact():
    assert fp2_value(0x0000) == 0.0
    assert fp2_value(0x1FFE) == 8190.0  # largest plain value
    assert fp2_value(0x60BC) == 0.188  # exponent 3: 188 / 1000
    assert fp2_value(0xE0BC) == -0.188
    assert fp2_value(0x24D2) == 123.4  # exponent 1: 1234 / 10
    assert fp2_value(0x44D2) == 12.34  # exponent 2: 1234 / 100
    for sentinel in (0x9FFE, 0x1FFF, 0x9FFF):
        assert fp2_value(sentinel) is None


@settings(max_examples=ADAPTER_FUZZ, deadline=None)
@given(payload=st.one_of(
    st.binary(max_size=1500),
    st.builds(lambda tail, cut: write_tob1(ALL_TYPES, [(datetime(2026, 1, 1), ALL_VALUES[0])]
                                           )[0][:cut] + tail,
              st.binary(max_size=100), st.integers(0, 700))),
    final=st.booleans())
def test_arbitrary_bytes_never_raise(payload, final):
    decoded = TOB1Adapter(AdapterContext("X", 0)).decode(payload, start=0, final=final)
    assert 0 <= decoded.consumed <= len(payload)
    if final:
        assert decoded.consumed == len(payload)


def test_sniff():
    assert TOB1Adapter.sniff(b'"TOB1","x"')
    assert not TOB1Adapter.sniff(b'"TOA5","x"')
