"""What every format adapter promises: its golden cases decode as recorded, and splitting
the input into reads at any points (with state carried between them, as sources do) gives
exactly the same result as one read."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from obslink.plugins.bufr import BUFRAdapter
from obslink.plugins.cma_hourly import CMAHourlyAdapter
from obslink.plugins.cma_minute import CMAMinuteAdapter
from obslink.plugins.delimited import DelimitedAdapter
from obslink.plugins.hj212 import HJ212Adapter
from obslink.plugins.toa5 import TOA5Adapter
from obslink.plugins.tob1 import TOB1Adapter
from tests.golden_cases import (GOLDEN, case_input, case_names, check_golden_case,
                                context_for, decode_in_chunks, stream_name)

ADAPTERS = {"toa5": TOA5Adapter, "tob1": TOB1Adapter, "hj212": HJ212Adapter,
            "delimited": DelimitedAdapter, "bufr": BUFRAdapter,
            "cma_aws_hourly": CMAHourlyAdapter, "cma_aws_minute": CMAMinuteAdapter}
CASES = [(fmt, name) for fmt in ADAPTERS for name in case_names(fmt)]


@pytest.mark.parametrize("fmt, name", CASES, ids=[f"{f}/{n}" for f, n in CASES])
def test_golden_case(fmt, name):
    check_golden_case(ADAPTERS[fmt], fmt, name)


@pytest.mark.parametrize("fmt", ADAPTERS)
def test_every_adapter_has_golden_cases(fmt):
    assert len(case_names(fmt)) >= 5


@settings(max_examples=600, deadline=None)
@given(case=st.sampled_from(CASES), data=st.data())
def test_any_split_into_reads_gives_the_same_result(case, data):
    fmt, name = case
    folder = GOLDEN / fmt / name
    raw = case_input(folder)
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=8))
    context, stream = context_for(folder), stream_name(folder)
    assert decode_in_chunks(ADAPTERS[fmt], raw, context, cuts, stream) == \
        decode_in_chunks(ADAPTERS[fmt], raw, context, [], stream)
