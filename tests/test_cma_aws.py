"""CMA surface AWS adapters specifics (golden cases and split reads: test_adapter_contract.py)."""

from __future__ import annotations

import os
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from obslink.errors import ConfigError
from obslink.plugins.cma_aws_items import (HEADER_ITEMS, HOURLY_SECTIONS, MINUTE_COLUMNS,
                                          MINUTE_QUALITY)
from obslink.plugins.cma_hourly import CMAHourlyAdapter
from obslink.plugins.cma_minute import CMAMinuteAdapter
from obslink.plugins.formats import AdapterContext
from obslink.simulated_cma import hourly_record, minute_line, minute_values

ADAPTER_FUZZ = int(os.environ.get("OBSLINK_ADAPTER_FUZZ_EXAMPLES", 10_000))
RECORD = hourly_record("58238", datetime(2025, 1, 14, 6)).encode()
MINUTE = minute_line("1200", minute_values(0)).encode()


def test_the_layouts_add_up():
    # the hourly record: 128 items in all, as the AHQC tables count them
    assert len(HEADER_ITEMS) + sum(map(len, HOURLY_SECTIONS.values())) + 1 + 3 * 9 == 128
    begin = 4
    for column in MINUTE_COLUMNS:  # contiguous, then one quality digit per column
        assert column.begin == begin
        begin = column.end
    assert begin == MINUTE_QUALITY[0] and len(MINUTE_COLUMNS) == 48 == \
        MINUTE_QUALITY[1] - MINUTE_QUALITY[0]


def mutations(sample: bytes):
    """Arbitrary bytes, and the sample with bytes replaced, cut or repeated."""
    def mutate(data):
        edits, cut = data
        raw = bytearray(sample)
        for position, value in edits:
            raw[position % len(raw)] = value
        return bytes(raw[:cut]) if cut is not None else bytes(raw) * 2
    return st.one_of(st.binary(max_size=1500), st.tuples(
        st.lists(st.tuples(st.integers(0, len(sample)), st.integers(0, 255)), max_size=6),
        st.one_of(st.none(), st.integers(0, len(sample)))).map(mutate))


@settings(max_examples=ADAPTER_FUZZ, deadline=None)
@given(payload=mutations(RECORD), final=st.booleans())
def test_hourly_arbitrary_bytes_never_raise(payload, final):
    decoded = CMAHourlyAdapter(AdapterContext("X", 480)).decode(payload, start=0, final=final)
    assert 0 <= decoded.consumed <= len(payload)


@settings(max_examples=ADAPTER_FUZZ, deadline=None)
@given(payload=mutations(MINUTE), final=st.booleans(), stream=st.sampled_from(
    ["AWS_M_Z_58238_20250114.txt", "AWS_M_Z_58238_20251399.txt", "other.txt"]))
def test_minute_arbitrary_bytes_never_raise(payload, final, stream):
    adapter = CMAMinuteAdapter(AdapterContext("X", 480))
    adapter.start_stream(stream)
    decoded = adapter.decode(payload, start=0, final=final)
    assert 0 <= decoded.consumed <= len(payload)


def test_an_hourly_record_waits_for_its_end_until_the_file_is_complete():
    adapter = CMAHourlyAdapter()
    partial = adapter.decode(RECORD[:-8], start=0, final=False)
    assert partial.consumed == 0 and not partial.readings and not partial.quarantined
    whole = adapter.decode(RECORD, start=0, final=False)
    assert whole.consumed == len(RECORD) and len(whole.readings) == 72


def test_a_long_run_of_lines_that_are_not_records_is_quarantined_before_the_file_ends():
    junk = b"x" * 100 + b"\n"
    decoded = CMAHourlyAdapter().decode(junk * 700, start=0, final=False)  # 70 KB, no blank
    assert decoded.consumed == len(junk) * 700 and len(decoded.quarantined) == 1
    assert "not part of a record" in decoded.quarantined[0].reason


def test_hour_to_date_rain_covers_the_minutes_since_the_hour():
    adapter = CMAMinuteAdapter(AdapterContext("X", 480))
    adapter.start_stream("AWS_M_Z_58238_20250114.txt")
    lines = b"".join(minute_line(hhmm, minute_values(0)).encode() for hhmm in ("1217", "1300"))
    periods = [r.period_s for r in adapter.decode(lines, start=0, final=True).readings
               if r.source_field == "hourR"]
    assert periods == [17 * 60, 3600]


def test_the_file_names_day_survives_in_the_state():
    first = CMAMinuteAdapter(AdapterContext("X", 480))
    first.set_state(None)
    first.start_stream("aws_m_z_58238_20250114.TXT")
    first.decode(MINUTE, start=0, final=False)
    later = CMAMinuteAdapter(AdapterContext("X", 480))
    later.set_state(first.get_state())  # the next read of the same file, after a restart
    assert len(later.decode(MINUTE, start=len(MINUTE), final=False).readings) == 47


def test_sniffing_tells_the_two_files_and_others_apart():
    assert CMAHourlyAdapter.sniff(b"\xef\xbb\xbf" + RECORD[:512])
    assert not CMAHourlyAdapter.sniff(MINUTE) and not CMAHourlyAdapter.sniff(b'"TOA5",x\n')
    assert CMAMinuteAdapter.sniff(MINUTE) and not CMAMinuteAdapter.sniff(RECORD[:512])
    assert not CMAMinuteAdapter.sniff(b"2025-01-14 12:00,1.5\n")


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="encoding"):
        CMAHourlyAdapter(AdapterContext("X", 0, {"encoding": "latin-1"}))
    with pytest.raises(ConfigError, match="yyyyMMdd"):
        CMAMinuteAdapter(AdapterContext("X", 0, {"day": "2025-01-14"}))
