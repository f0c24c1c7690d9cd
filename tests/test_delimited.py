"""Delimited adapter specifics (golden cases and split reads: test_adapter_contract.py)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from obslink.errors import ConfigError
from obslink.plugins.delimited import DelimitedAdapter
from obslink.plugins.formats import AdapterContext

ADAPTER_FUZZ = int(os.environ.get("OBSLINK_ADAPTER_FUZZ_EXAMPLES", 10_000))


@settings(max_examples=ADAPTER_FUZZ, deadline=None)
@given(payload=st.one_of(st.binary(max_size=1500), st.text(max_size=300).map(str.encode)),
       final=st.booleans(), options=st.sampled_from([
           {}, {"time_format": "iso"}, {"time_format": "epoch", "names_line": "false"},
           {"delimiter": "tab", "units_line": "true", "time_columns": "1,2"}]))
def test_arbitrary_bytes_never_raise(payload, final, options):
    decoded = DelimitedAdapter(AdapterContext("X", 60, options)).decode(payload, start=0,
                                                                        final=final)
    assert 0 <= decoded.consumed <= len(payload)


def test_bad_delimiter_is_a_config_error():
    with pytest.raises(ConfigError, match="delimiter"):
        DelimitedAdapter(AdapterContext("X", 0, {"delimiter": "::"}))
