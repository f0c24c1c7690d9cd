"""BUFR adapter specifics (golden cases and split reads: test_adapter_contract.py)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from obslink.plugins.bufr import BUFRAdapter
from obslink.plugins.formats import AdapterContext
from tests.golden_cases import GOLDEN, case_input

ADAPTER_FUZZ = int(os.environ.get("OBSLINK_ADAPTER_FUZZ_EXAMPLES", 10_000))
GOOD = case_input(GOLDEN / "bufr" / "single_station")


@st.composite
def damaged_messages(draw):
    """A valid message with a few bytes changed, cut or repeated: what a bad link makes."""
    data = bytearray(GOOD * draw(st.integers(1, 2)))
    for _ in range(draw(st.integers(0, 6))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[:draw(st.integers(0, len(data)))])


@settings(max_examples=ADAPTER_FUZZ, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(payload=st.one_of(st.binary(max_size=600), damaged_messages(),
                         st.binary(max_size=40).map(lambda b: b"BUFR" + b)),
       final=st.booleans())
def test_arbitrary_and_damaged_bytes_never_raise(payload, final):
    decoded = BUFRAdapter(AdapterContext("X", 0)).decode(payload, start=0, final=final)
    assert 0 <= decoded.consumed <= len(payload)
    if final:
        assert decoded.consumed == len(payload)


def test_times_are_utc_whatever_the_configured_offset():
    readings = BUFRAdapter(AdapterContext("X", 480)).decode(GOOD, start=0, final=True).readings
    assert {r.observed_at for r in readings if r.period_s is None} == {1762149600000000}


def test_sniff():
    assert BUFRAdapter.sniff(GOOD)
    assert BUFRAdapter.sniff(b"ISMD01 BABJ 030600\r\r\n" + GOOD)
    assert not BUFRAdapter.sniff(b'"TOA5","x"')


def test_a_message_that_crashes_eccodes_is_quarantined_and_the_rest_read():
    """One changed descriptor octet (found by the test above) makes ecCodes abort; the
    worker process dies instead of the agent, and the next message is read as usual."""
    damaged = bytearray(GOOD)
    damaged[37] = 131
    decoded = BUFRAdapter(AdapterContext("X", 0)).decode(bytes(damaged) + GOOD, start=0,
                                                         final=True)
    good = BUFRAdapter(AdapterContext("X", 0)).decode(GOOD, start=0, final=True)
    assert decoded.readings == good.readings and good.readings
    assert [q.position for q in decoded.quarantined] == [0]
    assert "ecCodes" in decoded.quarantined[0].reason


def test_damaged_section_lengths_are_caught_before_eccodes_sees_them():
    from obslink.plugins.bufr import section_problem

    assert section_problem(GOOD) is None
    damaged = bytearray(GOOD)
    damaged[10] = 0x68  # section 1 claims 104 octets of a 114-octet message
    assert "section 1 length 104 does not fit" in section_problem(bytes(damaged))
