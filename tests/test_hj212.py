"""HJ 212 adapter specifics (golden cases and split reads: test_adapter_contract.py)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from obslink.plugins.formats import AdapterContext
from obslink.plugins.hj212 import HJ212Adapter, crc_hj212, crc_modbus, frame

ADAPTER_FUZZ = int(os.environ.get("OBSLINK_ADAPTER_FUZZ_EXAMPLES", 10_000))


def test_crc_variants_match_the_standard_example():
    # HJ 212 Annex A worked example; CRC-16/MODBUS of the same bytes differs
    segment = (b"QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;"
               b"Flag=5;CP=&&RtdInterval=30&&")
    assert crc_hj212(segment) == 0x1C80
    assert crc_modbus(segment) == 0x0759
    assert frame(segment).endswith(b"1C80\r\n")
    assert frame(segment, "modbus-swapped").endswith(b"5907\r\n")


PACKET = frame(b"QN=20251103101500123;ST=22;CN=2011;PW=123456;MN=AQ0001;Flag=5;"
               b"CP=&&DataTime=20251103101500;a34004-Rtd=35.2,a34004-Flag=N&&")
HJ212_LIKE = st.lists(st.one_of(
    st.sampled_from([PACKET, PACKET[2:], PACKET[:30], b"##", b"##9999QN=", b"\x00", b"\r\n",
                     b"CP=&&", b"&&", b";", b"=", b"DataTime=2025", b"-Rtd=", b"0000"]),
    st.binary(max_size=20)), max_size=20).map(b"".join)


@settings(max_examples=ADAPTER_FUZZ, deadline=None)
@given(payload=st.one_of(st.binary(max_size=1500), HJ212_LIKE), final=st.booleans(),
       crc=st.sampled_from(["hj212", "modbus", "none"]))
def test_arbitrary_bytes_never_raise(payload, final, crc):
    adapter = HJ212Adapter(AdapterContext("X", 480, {"crc": crc}))
    decoded = adapter.decode(payload, start=0, final=final)
    assert 0 <= decoded.consumed <= len(payload)
    if final:
        assert decoded.consumed == len(payload)


def test_only_the_configured_device_is_accepted():
    adapter = HJ212Adapter(AdapterContext("X", 0, {"mn": "OTHER"}))
    decoded = adapter.decode(PACKET, start=0, final=True)
    assert not decoded.readings and not decoded.replies
    assert "MN 'AQ0001' is not this station's device (option mn: OTHER)" in \
        decoded.quarantined[0].reason
    both = HJ212Adapter(AdapterContext("X", 0, {"mn": "OTHER, AQ0001"}))
    assert len(both.decode(PACKET, start=0, final=True).readings) == 1


def test_a_station_config_must_name_its_devices(tmp_path):
    from obslink.agent.config import load_config
    from obslink.errors import ConfigError
    from obslink.plugins.registry import load_registry

    config = tmp_path / "agent.toml"
    config.write_text('[station]\nid = "AQ1"\nprivate_key = "k"\n[sources.dau]\n'
                      'type = "tcp"\nformat = "hj212"\nlisten = "127.0.0.1:9000"\n')
    with pytest.raises(ConfigError) as info:
        load_config(config, load_registry())
    assert [p for p in info.value.problems if "mn" in p] == [
        "sources.dau.options.mn: required: the MN (device id) of the station's data "
        "acquisition unit, or several comma-separated; packets with another MN are "
        "quarantined. A station config must set it; `obslink parse` accepts any when empty"]


def test_element_mapping_overrides_code_and_unit():
    adapter = HJ212Adapter(AdapterContext("X", 0, {}, {"a34004": ("pm10", "mg/m3")}))
    reading = adapter.decode(PACKET, start=0, final=True).readings[0]
    assert (reading.element, reading.unit, reading.source_field) == ("pm10", "mg/m3",
                                                                     "a34004-Rtd")


def test_sniff():
    assert HJ212Adapter.sniff(PACKET)
    assert HJ212Adapter.sniff(b"\x00\x00" + PACKET)
    assert not HJ212Adapter.sniff(b'"TOA5","x"')


def test_non_finite_values_become_missing():
    """The wire and the catalog never carry NaN or infinities (docs/protocol.md)."""
    packet = frame(b"QN=1;ST=22;CN=2011;PW=1;MN=AQ0001;Flag=4;CP=&&DataTime=20251103101500;"
                   b"a34004-Rtd=inf,a34004-Flag=N;a34002-Rtd=-inf;a21026-Rtd=nan&&")
    readings = HJ212Adapter(AdapterContext("X", 0)).decode(packet, start=0, final=True).readings
    assert [(r.value, r.qc) for r in readings] == [(None, 8)] * 3


class TestHistoryRequests:
    """The hole tracker behind the hj212 option history_requests (plugins/hj212_history)."""

    MINUTE = 60_000_000
    HEADER = {"CN": "2051", "MN": "U1", "ST": "22", "PW": "123456", "Flag": "5"}

    def tracker(self):
        from obslink.plugins.hj212_history import HistoryTracker

        return HistoryTracker({"2051": 60, "2061": 3600, "2031": 86_400}, 480, 7 * 86_400)

    def test_a_hole_is_asked_for_once_and_narrowed_by_its_answers(self):
        tracker, m = self.tracker(), self.MINUTE
        assert tracker.take(self.HEADER, 0, "Q1") == (True, [])
        store, requests = tracker.take(self.HEADER, 5 * m, "Q2")
        assert store and requests == [
            "QN=Q2;ST=22;CN=2051;PW=123456;MN=U1;Flag=5;CP=&&BeginTime=19700101080100;"
            "EndTime=19700101080400&&"]
        assert tracker.take(self.HEADER, 6 * m, "Q3") == (True, [])  # no second request
        assert tracker.take(self.HEADER, 1 * m, "-") == (True, [])
        assert tracker.take(self.HEADER, 3 * m, "-") == (True, [])  # out of order
        assert tracker.take(self.HEADER, 3 * m, "-") == (False, [])  # answered twice
        assert tracker.take(self.HEADER, 2 * m, "-") == (True, [])
        assert tracker.holes["U1|2051"][:2] == [4 * m, 4 * m]
        assert tracker.take(self.HEADER, 4 * m, "-") == (True, [])
        assert tracker.holes == {}
        assert tracker.take(self.HEADER, 4 * m, "-") == (False, [])  # stored already
        assert tracker.take(self.HEADER, 6 * m, "-") == (False, [])  # a resend

    def test_an_open_hole_survives_a_restart_and_is_asked_for_from_where_it_got_to(self):
        tracker, m = self.tracker(), self.MINUTE
        tracker.take(self.HEADER, 0, "Q1")
        tracker.take(self.HEADER, 10 * m, "Q2")
        tracker.take(self.HEADER, 1 * m, "-")
        restarted = self.tracker()
        restarted.set_state(tracker.get_state())
        assert restarted.reopen() == [
            "QN=Q2;ST=22;CN=2051;PW=123456;MN=U1;Flag=5;CP=&&BeginTime=19700101080200;"
            "EndTime=19700101080900&&"]
        assert restarted.take(self.HEADER, 1 * m, "-") == (False, [])

    def test_the_units_result_closes_the_hole_and_long_holes_are_cut(self):
        tracker = self.tracker()
        tracker.take(self.HEADER, 0, "Q1")
        tracker.take(self.HEADER, 30 * 86_400_000_000, "Q2")
        first, final = tracker.holes["U1|2051"][:2]
        assert final - first == 7 * 86_400_000_000  # only the newest week is asked for
        tracker.finished({"QN": "Q2", "MN": "U1", "CN": "9012"})
        assert tracker.holes == {}
        assert tracker.take({**self.HEADER, "CN": "2011"}, 0, "-") == (True, [])
