"""CMA surface AWS adapters specifics (golden cases and split reads: test_adapter_contract.py)."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from obslink.errors import ConfigError
from obslink.plugins.cma_aws_items import (HEADER_ITEMS, HOURLY_SECTIONS, MINUTE_COLUMNS,
                                          MINUTE_QUALITY)
from obslink.plugins.cma_hourly import CMAHourlyAdapter
from obslink.plugins.cma_minute import CMAMinuteAdapter
from obslink.plugins.formats import AdapterContext
from obslink.readings import utc_us_from_datetime
from obslink.demo.simulated_cma import hourly_record, minute_line, minute_values

ADAPTER_FUZZ = int(os.environ.get("OBSLINK_ADAPTER_FUZZ_EXAMPLES", 10_000))
RECORD = hourly_record("58238", datetime(2025, 1, 14, 6)).encode()
MINUTE = minute_line("1200", minute_values(0)).encode()
GOLDEN = Path(__file__).parent / "golden" / "cma_aws_hourly"
# the header with its observation-mode item replaced by the control byte 0x1C, which the
# header pattern takes for a value and str.split() for a space (it crashed the reader)
CONTROL_BYTE_IN_HEADER = RECORD.replace(b"00099 1 000", b"00099 \x1c 000", 1)


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
@example(payload=CONTROL_BYTE_IN_HEADER, final=True)
@example(payload=CONTROL_BYTE_IN_HEADER, final=False)
@example(payload=RECORD.replace(b" 1 000 000", b" 1 000\x1d000", 1), final=True)
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
    assert whole.consumed == len(RECORD) and len(whole.readings) == 131  # 60 of them MR


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


def test_a_control_byte_in_the_header_is_a_value_of_the_header_not_a_space():
    later = hourly_record("58238", datetime(2025, 1, 14, 7)).encode()
    decoded = CMAHourlyAdapter().decode(CONTROL_BYTE_IN_HEADER + later, start=0, final=True)
    hours = {r.observed_at for r in decoded.readings if r.source_field == "T"}
    assert hours == {utc_us_from_datetime(datetime(2025, 1, 14, hour, tzinfo=timezone.utc))
                     for hour in (6, 7)}  # the mode item is not a reading: both records read
    assert decoded.consumed == len(CONTROL_BYTE_IN_HEADER + later)


# NMIC's CIMISS2 decoder (DecodeBABJ, with its field rules in SurfaceObservationDataNation)
# applied by hand to the sample record of its own documentation: temperatures and pressure
# tendencies are (1000 - x) / 10, pressures, winds and rain x / 10, humidity and directions
# as written. Written from the decoder's rules, not from obslink's output.
NMIC_SAMPLE = {
    "P": 1510.2, "VP3": 137.9, "VP24": 137.6, "MaxP": 1510.2, "MinP": 1510.2,
    "T": 3.9, "MaxT": 3.9, "MinT": 0.6, "VT24": 3.6, "MaxT24": 4.1, "MinT24": -8.1,
    "TD": -11.6, "RH": 31, "MinRH": 31, "WP": 2.5,
    "HRain": 0.0, "HRain3": 0.0, "HRain6": 0.0, "HRain12": 0.0, "HRain24": 0.0,
    "WD2": 203, "WS2": 2.3, "WD10": 209, "WS10": 2.7, "MaxWD": 209, "MaxWS": 2.9, "WD": 205,
    "WS": 2.7, "ExWD": 229, "ExWS": 4.7, "ExWS6": 4.7, "ExWD6": 229, "ExWS12": 4.7,
    "ExWD12": 229,
    "ET": 8.9, "MaxET": 8.9, "MinET": 3.5, "MinET12": -11.4, "ET5": -1.8, "ET10": -1.8,
    "ET15": -0.6, "ET20": 0.6, "ET40": 1.9, "ET80": 7.3, "ET160": 12.3, "ET320": 16.8,
    "GT": 12.7, "MaxGT": 12.7, "MinGT": 7.9,
    "V1": 15102, "V10": 15102, "MinV": 15102, "V": 13800,
}


def test_the_national_decoders_sample_record_reads_as_that_decoder_reads_it():
    data = (GOLDEN / "nmic_decoder_sample" / "input.txt").read_bytes()
    decoded = CMAHourlyAdapter().decode(data, start=0, final=True)
    assert decoded.quarantined == []
    values = {r.source_field: r.value for r in decoded.readings
              if r.source_field != "HMRain" and r.value is not None}
    assert values == NMIC_SAMPLE
    minutes = [r for r in decoded.readings if r.source_field == "HMRain"]
    assert len(minutes) == 60 and {r.value for r in minutes} == {0.0}
    # Q1 of PP is 03000303, Q2 27002828, Q3 99999999: P's digits are 0, 2, 9
    assert next(r.source_flag for r in decoded.readings if r.source_field == "P") == "qc=029"


def test_trace_calm_and_missing_markers():
    from obslink.plugins.cma_aws_items import HOURLY_SECTIONS
    from obslink.plugins.cma_aws_values import reading_for

    rain = HOURLY_SECTIONS["RE"][0]
    direction = HOURLY_SECTIONS["WI"][0]
    trace = reading_for(rain, ",,,,", 0, rain.period_s, "qc=000")
    assert (trace.value, trace.source_flag, trace.qc) == (0.0, "trace qc=000", 9)
    calm = reading_for(direction, "PPC", 0, None, None)
    assert (calm.value, calm.source_flag) == (0.0, "PPC")
    north = reading_for(direction, "000", 0, None, None, north_is_zero=True)
    assert north.value == 360.0
    missing = reading_for(rain, "////", 0, None, None)
    assert (missing.value, missing.source_flag, missing.qc) == (None, "////", 8)
    with pytest.raises(ValueError, match="PPC"):
        reading_for(rain, "PPC", 0, None, None)  # calm is a direction's marker only
