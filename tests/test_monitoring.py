"""Monitoring (docs/monitoring.md): the hourly counts kept at commit, completeness,
availability and timeliness from them, the alarm rules, and webhook delivery with
retries — on a real SQLite catalog and a real local HTTP server."""

from __future__ import annotations

import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from obslink import wire
from obslink.errors import ConfigError
from obslink.keys import key_id, public_bytes
from obslink.readings import QC_ERRONEOUS, QC_GOOD, QC_NOT_CHECKED, Reading, now_us
from obslink.server.catalog import AcceptedBatch, Station, open_catalog
from obslink.server.catalog.monitor_counts import HOUR_US
from obslink.server.monitoring import alarms, delivery, rules
from obslink.server.monitoring.measures import expected_count
from obslink.server.monitoring.report import period_report, station_history
from obslink.server.monitoring.watch import Watch
from tests.conftest import BACKENDS, wait_until
from tests.test_catalog_rows import _us

MINUTE = 60_000_000


class Station_:
    def __init__(self, catalog, station: str, interval: int = 60) -> None:
        self.catalog, self.id = catalog, station
        self.key = Ed25519PrivateKey.generate()
        self.topic = f"obslink/v1/net/{station}/data"
        self.seq = 0
        catalog.add_station(Station(station, "net", interval_seconds=interval),
                            public_bytes(self.key.public_key()), key_id(self.key.public_key()))

    def send(self, times: list[int], qc: int = QC_GOOD, value: float | None = 1.0,
             clock: dict | None = None,
             elements: tuple[str, ...] = ("air_temperature", "wind_speed")) -> None:
        self.seq += 1
        readings = [Reading(t, element, value, "u", element[:1], None, qc, None, 1, 0)
                    for t in times for element in elements]
        batch = wire.Batch(self.id, "e1", self.seq, now_us(), readings, "toa5", "1",
                           {"name": "f"}, clock or {"synced": True, "offset_ms": 0.5},
                           ["range"])
        body = wire.encode_batch(batch)
        self.catalog.commit([AcceptedBatch(
            wire.decode_batch_columns(body), self.topic, key_id(self.key.public_key()),
            self.key.sign(wire.signed_message(self.topic, body)), body, now_us())])


@pytest.fixture
def catalog(catalog_location):
    found = open_catalog(catalog_location)
    yield found
    found.close()


def hour_start(us: int) -> int:
    return us - us % HOUR_US


def test_expected_counts_multiples_of_the_interval():
    assert expected_count(60, 0, 3600 * 10**6) == 60
    assert expected_count(60, 1, 3600 * 10**6 + 1) == 60
    assert expected_count(60, 0, 0) == 0
    assert expected_count(3600, -1, 1) == 1  # the hour at 0, before 1970 too


def test_counts_kept_at_commit_give_completeness_availability_and_timeliness(catalog):
    station = Station_(catalog, "S1")
    now = now_us()
    last_hour = hour_start(now) - HOUR_US
    minutes = [last_hour + m * MINUTE for m in range(60) if m % 10 != 5]  # 54 of 60
    station.send(minutes[:50])
    station.send(minutes[50:], qc=QC_ERRONEOUS)
    report = period_report(catalog, last_hour, last_hour + HOUR_US, now, elements=True)
    found = report["stations"][0]
    assert (found["expected"], found["received"]) == (120, 108)
    assert found["completeness"] == pytest.approx(108 / 120)
    assert found["usable"] == 100 and found["availability"] == pytest.approx(100 / 120)
    assert found["qc_coverage"] == 1.0 and found["erroneous"] == 8
    assert found["status"] == "below"
    # all arrived more than 60 s after they were observed (they are from the last hour)
    assert found["timeliness"]["within_60s"] == 0.0
    assert found["timeliness"]["within_7200s"] == 1.0
    assert [e["element"] for e in found["elements"]] == ["air_temperature", "wind_speed"]
    assert found["elements"][0]["expected"] == 60
    assert report["network"]["by_status"] == {"complete": 0, "below": 1, "not-reporting": 0}


def test_live_readings_count_as_timely_and_a_station_complete(catalog):
    station = Station_(catalog, "S1", interval=60)
    now = now_us()
    start = hour_start(now) - HOUR_US
    # every minute of the last hour and this one until now, committed as they happen
    station.send([t for t in range(start, now - 60_000_000, MINUTE)])
    report = period_report(catalog, start, now, now_us())
    found = report["stations"][0]
    assert found["completeness"] >= 0.98 and found["status"] == "complete"
    # observed → committed is a minute or more for all but the newest: the bucket says so
    assert found["latency_p50_s"] >= 60


def test_unchecked_readings_lower_qc_coverage(catalog):
    station = Station_(catalog, "S1")
    now = now_us()
    station.send([now - 2 * MINUTE], qc=QC_NOT_CHECKED)
    station.send([now - MINUTE])
    found = period_report(catalog, now - HOUR_US, now, now)["stations"][0]
    # the centre's QC checks what arrived unchecked (docs/qc.md) only in a collector; the
    # catalog counts what it was given
    assert found["qc_coverage"] == 0.5


def test_history_has_hourly_and_daily_buckets(catalog):
    station = Station_(catalog, "S1")
    now = now_us()
    station.send([now - 3 * HOUR_US, now - 2 * MINUTE])
    history = station_history(catalog, "S1", now, hours=24, days=30)
    assert len(history["hourly"]) == 24 and len(history["daily"]) == 30
    assert sum(h["received"] for h in history["hourly"]) == 4
    assert history["daily"][-1]["received"] + history["daily"][-2]["received"] == 4


def test_a_silent_station_raises_an_alarm_that_clears_when_it_reports(catalog):
    station = Station_(catalog, "S1", interval=60)
    now = now_us()
    station.send([now - MINUTE])
    committed = catalog.monitor_stations()[0]["last_committed_us"]
    assert not [f for f in alarms.findings(catalog, committed + 2 * MINUTE - 1)
                if f.rule == "silent"]
    later = committed + 2 * MINUTE
    found = [f for f in alarms.findings(catalog, later) if f.rule == "silent"]
    assert found and "no data for 2.0 reporting intervals" in found[0].detail
    raised, cleared = alarms.changes(catalog.open_alarms(), found)
    events = catalog.change_alarms(raised, cleared, later, ["mqtt"])
    assert [(e["event"], e["rule"]) for e in events] == [("raised", "silent")]
    # raising what is open already changes nothing; another worker may have raised it
    assert catalog.change_alarms(raised, [], later, ["mqtt"]) == []
    station.send([now_us()])
    raised, cleared = alarms.changes(catalog.open_alarms(), [
        f for f in alarms.findings(catalog, now_us()) if f.rule == "silent"])
    events = catalog.change_alarms(raised, cleared, now_us(), ["mqtt"])
    assert [(e["event"], e["cleared_us"] is not None) for e in events] == [("cleared", True)]
    assert catalog.open_alarms() == []
    assert len(catalog.alarms(open_only=False)) == 1


def test_rules_with_defaults_network_and_station_overrides(catalog):
    station = Station_(catalog, "S1")
    Station_(catalog, "S2")
    now = now_us()
    station.send([now - t * MINUTE for t in range(1, 21)], qc=QC_ERRONEOUS)
    station.send([now - MINUTE], clock={"synced": False})
    found = {f.rule for f in alarms.findings(catalog, now) if f.station == "S1"}
    assert {"qc_erroneous", "clock"} <= found
    catalog.set_alarm_rule("", "qc_erroneous", rules.parse_changes("qc_erroneous",
                                                                   ["share_above=0.99"]))
    catalog.set_alarm_rule("S1", "clock", rules.parse_changes("clock", ["enabled=false"]))
    found = {f.rule for f in alarms.findings(catalog, now) if f.station == "S1"}
    assert not {"qc_erroneous", "clock"} & found
    assert rules.effective(catalog.alarm_rules(), "S2", "clock")["enabled"] is True
    # S2 never reported: it raises nothing (it may not be deployed yet)
    assert not [f for f in alarms.findings(catalog, now + HOUR_US) if f.station == "S2"]


@pytest.mark.parametrize("rule, pairs, says", [
    ("nope", [], "no alarm rule 'nope'"),
    ("silent", ["intervals"], "give key=value"),
    ("silent", ["intervals=two"], "give a number like 2"),
    ("clock", ["unsynchronised=maybe"], "give true or false"),
    ("latency", ["p95_above_s=-1"], "cannot be negative"),
])
def test_rule_changes_are_checked(rule, pairs, says):
    with pytest.raises(ConfigError, match=says):
        rules.parse_changes(rule, pairs)


def test_gaps_and_refusals_raise_alarms(catalog):
    from obslink.server.catalog import Refusal
    station = Station_(catalog, "S1")
    now = now_us()
    station.send([now - MINUTE])
    catalog.record_refusals([Refusal(station.topic, "bad-signature", "x", b"p", now,
                                     station="S1")])
    found = {f.rule: f for f in alarms.findings(catalog, now_us())}
    assert "refusals" in found and "1 message(s)" in found["refusals"].detail


def test_a_radars_status_with_active_alarms_raises_the_equipment_alarm_until_clear(catalog):
    radar = Station_(catalog, "RADAR-1")
    now = now_us()
    radar.send([now - 2 * MINUTE], value=2.0,
               elements=("equipment_alarm_count", "equipment_alarm_code"))
    found = {f.rule: f for f in alarms.findings(catalog, now_us())}
    assert "equipment" in found and "2 active alarm(s), the first with code 2" in \
        found["equipment"].detail
    radar.send([now - MINUTE], value=0.0, elements=("equipment_alarm_count",))
    assert "equipment" not in {f.rule for f in alarms.findings(catalog, now_us())}


def test_a_product_a_station_lost_raises_the_gaps_alarm(catalog):
    station = Station_(catalog, "RADAR-2")
    station.send([now_us() - MINUTE])
    catalog.record_product_gap("RADAR-2", "e1", {
        "id": 1, "name": "Z_RADR_I_big.bin.bz2", "size": 10**9, "observed_us": None,
        "reason": "product-too-large", "detail": "too large", "at": now_us()}, now_us())
    found = {f.rule: f for f in alarms.findings(catalog, now_us())}
    assert "gaps" in found and "1 gap(s)" in found["gaps"].detail


class Hook(BaseHTTPRequestHandler):
    answers: list[int] = []
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        status = self.answers.pop(0) if self.answers else 200
        if status == 200:
            self.received.append(body)
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    Hook.answers, Hook.received = [500, 503], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alarms"
    server.shutdown()


def test_webhook_delivery_is_retried_and_recorded(catalog, webhook, monkeypatch):
    monkeypatch.setattr(delivery, "FIRST_RETRY_S", 0.05)
    station = Station_(catalog, "S1")
    station.send([now_us() - MINUTE])
    catalog.add_webhook(webhook)
    published = []
    watch = Watch(catalog, lambda *message: published.append(message), every_s=0.1)
    watch.start()
    try:
        catalog.set_alarm_rule("S1", "silent", {"intervals": 0})  # silent at once
        events = watch.run_once()
        assert [e["rule"] for e in events] == ["silent"]
        topic, payload, retain = published[0]
        assert topic == "obslink/v1/net/S1/alarm/silent" and retain
        assert json.loads(payload)["state"] == "raised"
        wait_until(lambda: Hook.received, timeout=20, message="the webhook's delivery")
    finally:
        watch.stop()
    assert Hook.received[0]["rule"] == "silent" and Hook.received[0]["state"] == "raised"
    records = {d["channel"]: d for d in catalog.deliveries()}
    assert records["mqtt"]["status"] == "delivered"
    assert records[webhook]["status"] == "delivered" and records[webhook]["attempts"] == 3
    assert "HTTP 503" in records[webhook]["last_error"]


def test_a_webhook_that_never_answers_is_given_up_and_recorded(catalog, monkeypatch):
    monkeypatch.setattr(delivery, "FIRST_RETRY_S", 0.0)
    station = Station_(catalog, "S1")
    station.send([now_us() - MINUTE])
    catalog.add_webhook("http://127.0.0.1:9/nobody")  # the discard port: refused
    catalog.set_alarm_rule("S1", "silent", {"intervals": 0})
    raised, cleared = alarms.changes([], alarms.findings(catalog, now_us()))
    catalog.change_alarms(raised, cleared, now_us(), ["http://127.0.0.1:9/nobody"])
    import requests
    with requests.Session() as session:
        for _ in range(delivery.WEBHOOK_ATTEMPTS):
            delivery.send_due(catalog, session)
    (record,) = catalog.deliveries()
    assert record["status"] == "failed" and record["attempts"] == delivery.WEBHOOK_ATTEMPTS
    assert "ConnectionError" in record["last_error"]


def test_alarms_are_acknowledged_with_who_and_when(catalog):
    station = Station_(catalog, "S1")
    station.send([now_us() - MINUTE])
    catalog.change_alarms([("S1", "silent", "", "quiet", 2.0)], [], now_us(), [])
    (alarm,) = catalog.open_alarms()
    acknowledged = catalog.acknowledge_alarm(alarm["id"], "operator-ana")
    assert acknowledged["acknowledged_by"] == "operator-ana"
    assert acknowledged["acknowledged_us"] is not None
    with pytest.raises(Exception, match="no alarm 999"):
        catalog.acknowledge_alarm(999, "x")

HOUR = 3_600_000_000
reading_times = st.integers(-3 * HOUR, 3 * HOUR)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.tuples(reading_times, st.sampled_from([0, 1, 2, 8, 9]),
                                   st.booleans()), min_size=1, max_size=20),
                min_size=1, max_size=6))
@example([[(0, 1, False), (2 * HOUR, 0, True)]])  # one batch across hours, a None good
@pytest.mark.parametrize("backend", BACKENDS)
def test_counts_kept_at_commit_equal_counting_the_rows(tmp_path_factory, request, backend,
                                                       batches):
    """What ingest counts per station and hour (server/catalog/monitor_counts.py) is what
    counting the committed rows says, latency buckets included; on both backends (on
    PostgreSQL the hourly counts are upserts of its own dialect's rows)."""
    catalog = open_catalog(
        tmp_path_factory.mktemp("counts") / "catalog.db" if backend == "sqlite" else
        request.getfixturevalue("postgres").schema_url(f"counts_{secrets.token_hex(6)}"))
    try:
        station = Station_(catalog, "S1")
        now = now_us()
        for readings in batches:
            station.seq += 1
            batch = wire.Batch("S1", "e1", station.seq, now, [
                Reading(now + offset, f"e{i}", None if missing else 1.0, "u", f"f{i}", None,
                        qc, None, 1, 0) for i, (offset, qc, missing) in enumerate(readings)],
                "toa5", "1", {"name": "f"}, {"synced": True})
            body = wire.encode_batch(batch)
            catalog.commit([AcceptedBatch(
                wire.decode_batch_columns(body), station.topic,
                key_id(station.key.public_key()),
                station.key.sign(wire.signed_message(station.topic, body)), body, now_us())])
        committed = {row[0]: row[1] for row in catalog.conn.execute(
            "SELECT v.id, b.committed_at FROM observation_values v JOIN batches b ON "
            "b.id = v.batch_id")}
        kept = {row[1]: row[2:] for row in catalog.conn.execute(
            "SELECT station, hour, received, usable, erroneous, checked, within_10, "
            "within_7200 FROM monitor_hours")}
        expected: dict[int, list] = {}
        for row_id, observed, value, qc in catalog.conn.execute(
                "SELECT id, observed_us, value, qc FROM observation_values"):
            committed_us = _us(committed[row_id])
            hour = observed - observed % HOUR
            found = expected.setdefault(hour, [0, 0, 0, 0, 0, 0])
            late = committed_us - observed
            found[0] += 1
            found[1] += value is not None and qc in (0, 1)
            found[2] += qc == 2
            found[3] += qc != 9
            found[4] += late <= 10_000_000
            found[5] += late <= 7_200_000_000
        assert {hour: list(counts) for hour, counts in kept.items()} == expected
    finally:
        catalog.close()



def test_late_readings_and_reported_gaps_raise_their_alarms(catalog):
    from obslink import wire as wire_module
    from obslink.server.catalog import AcceptedGap

    station = Station_(catalog, "S1")
    now = now_us()
    station.send([now - 20 * MINUTE + t * 1_000_000 for t in range(12)])  # 20 min late
    found = {f.rule: f for f in alarms.findings(catalog, now_us())}
    assert "latency" in found and "within 1800 s" in found["latency"].detail
    gap = wire_module.GapReport("S1", "e1", 1, 1, 3, 3, 21, now - HOUR_US, now - 1,
                                "size-cap", now)
    catalog.record_gaps([AcceptedGap(gap, "obslink/v1/net/S1/gap", "kid", b"s", now_us())])
    found = {f.rule: f for f in alarms.findings(catalog, now_us())}
    assert "gaps" in found and "21 readings evicted" in found["gaps"].detail
