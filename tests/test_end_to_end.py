"""Station files → agent → Mosquitto → collector → catalog, with real processes."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from obslink import wire
from obslink.keys import key_id, load_private_key, write_keypair
from obslink.readings import Reading, format_utc, now_us
from tests.conftest import NETWORK, wait_until

pytestmark = pytest.mark.e2e


def catalog_readings(deployment, station):
    return deployment.catalog.query(
        "SELECT observed_at, element, value, unit FROM observations WHERE station = ? "
        "ORDER BY observed_at, element", station)


def expected_readings(station):
    return sorted((format_utc(t, fixed=True), element, value, unit)
                  for t, element, value, unit in station.logger.expected)


def test_appended_files_arrive_complete_with_utc_times(deployment_on_each_backend):
    deployment = deployment_on_each_backend
    station = deployment.add_station("0-20000-0-54511", kind_index=0)  # logger at UTC+08:00
    deployment.start_collector()
    deployment.start_agent(station)
    for _ in range(3):
        station.logger.write_next()
    wait_until(lambda: deployment.catalog.count("observations") == 21, message="3 records")
    for _ in range(4):  # the logger appends while the agent runs
        station.logger.write_next()
        time.sleep(0.15)
    wait_until(lambda: deployment.catalog.count("observations") == 49, message="7 records")

    assert catalog_readings(deployment, station.id) == expected_readings(station)
    # the logger wrote local time (+08:00); the catalog holds UTC
    first_line = station.logger.path.read_text().splitlines()[4]
    local = first_line.split(",")[0].strip('"')
    first_utc = catalog_readings(deployment, station.id)[0][0]
    assert int(local[11:13]) == (int(first_utc[11:13]) + 8) % 24
    provenance = deployment.catalog.query(
        "SELECT key_id, adapter, source_stream, raw_sha256, signed_sha256 FROM batches")
    kid = key_id(load_private_key(station.private_key).public_key())
    assert all(row[0] == kid and row[1] == "toa5" and row[2] == station.logger.path.name
               and len(row[3]) == 64 and len(row[4]) == 64 for row in provenance)
    assert deployment.catalog.count("refusals") == 0


def test_collector_down_while_stations_report_then_catches_up(deployment_on_each_backend):
    deployment = deployment_on_each_backend
    station = deployment.add_station("0-20000-0-54513", kind_index=2)
    deployment.start_agent(station)
    for _ in range(5):
        station.logger.write_next()
    time.sleep(1.0)
    assert deployment.catalog.count("observations") == 0
    deployment.start_collector()
    wait_until(lambda: deployment.catalog.count("observations") == 20, message="backlog")
    assert catalog_readings(deployment, station.id) == expected_readings(station)

    def agent_status():
        return json.loads(subprocess.run(
            [sys.executable, "-m", "obslink", "agent", "status", str(station.config), "--json"],
            capture_output=True, text=True, check=True).stdout)

    status = wait_until(lambda: (s := agent_status())["unacked_batches"] == 0 and s,
                        message="outbox to drain after acks")
    assert status["station"] == station.id and status["last_ack"] is not None
    assert status["protocol"] == 2  # the collector's acks announced it


# --- messages crafted by hand, as an attacker or a faulty network would send them ------------


class Publisher:
    def __init__(self, broker, ack_topic: str | None = None) -> None:
        self.acks: list[wire.Ack] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.subscribed = threading.Event()
        self.client.on_message = lambda c, u, m: self.acks.append(wire.decode_ack(m.payload))
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        if ack_topic:
            self.client.subscribe(ack_topic, qos=1)
            assert self.subscribed.wait(5)

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(timeout=5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def signed_batch(station_id: str, key_path, seq: int = 1, epoch: str = "e1",
                 topic_station: str | None = None, floor: int | None = None
                 ) -> tuple[str, bytes]:
    key = load_private_key(key_path)
    readings = [Reading(now_us(), "air_temperature", 21.5, "degC", "AirTC")]
    body = wire.encode_batch(wire.Batch(station_id, epoch, seq, now_us(), readings, "toa5", "1",
                                        floor=floor))
    topic = wire.data_topic(NETWORK, topic_station or station_id)
    return topic, wire.sign(body, topic, key, key_id(key.public_key()))


def refusal_reasons(deployment):
    return [row[0] for row in deployment.catalog.query("SELECT reason FROM refusals")]


def test_tampered_foreign_and_unknown_batches_are_refused(deployment_on_each_backend, tmp_path):
    deployment = deployment_on_each_backend
    station = deployment.add_station("0-20000-0-54514")
    deployment.start_collector()
    publisher = Publisher(deployment.broker)
    try:
        topic, payload = signed_batch(station.id, station.private_key, seq=1)
        flipped = bytearray(payload)
        flipped[len(flipped) // 2] ^= 0x01  # one bit inside the signed body
        publisher.publish(topic, bytes(flipped))
        write_keypair(tmp_path / "other.key", tmp_path / "other.pub")
        publisher.publish(*signed_batch(station.id, tmp_path / "other.key", seq=2))
        write_keypair(tmp_path / "stranger.key", tmp_path / "stranger.pub")
        publisher.publish(*signed_batch("0-20000-0-99999", tmp_path / "stranger.key", seq=3))
        # signed by the station itself, but published on another station's topic
        other = deployment.add_station("0-20000-0-54515")
        _topic, payload_a = signed_batch(station.id, station.private_key, seq=5)
        publisher.publish(wire.data_topic(NETWORK, other.id), payload_a)  # replayed elsewhere
        wait_until(lambda: len(refusal_reasons(deployment)) == 4, message="4 refusals")
    finally:
        publisher.close()
    # the replay on another station's topic is signed by a key that station does not own
    assert sorted(refusal_reasons(deployment)) == [
        "bad-signature", "unknown-key", "unknown-key", "unknown-station"]
    assert deployment.catalog.count("observations") == 0
    assert deployment.catalog.count("batches") == 0
    details = deployment.catalog.query("SELECT station, detail, payload_sha256 FROM refusals")
    assert all(detail and len(digest) == 64 for _s, detail, digest in details)


def test_the_same_batch_twice_is_stored_once_and_acked_twice(deployment_on_each_backend):
    deployment = deployment_on_each_backend
    station = deployment.add_station("0-20000-0-54516")
    deployment.start_collector()
    publisher = Publisher(deployment.broker, wire.ack_topic(NETWORK, station.id))
    try:
        topic, payload = signed_batch(station.id, station.private_key, seq=42, epoch="abc")
        publisher.publish(topic, payload)
        wait_until(lambda: len(publisher.acks) == 1, message="first ack")
        publisher.publish(topic, payload)
        wait_until(lambda: len(publisher.acks) == 2, message="second ack")
    finally:
        publisher.close()
    assert [ack.committed for ack in publisher.acks] == [[42], [42]]
    assert all(ack.epoch == "abc" for ack in publisher.acks)
    assert deployment.catalog.count("batches") == 1
    assert deployment.catalog.count("observations") == 1


def test_demo_commits_every_reading(tmp_path):
    # 4 s at 600 simulated minutes a minute: 40 minutes of records, more than the time
    # check lets a reading run ahead of the clock
    result = subprocess.run([sys.executable, "-m", "obslink", "demo", "--stations", "3",
                             "--duration", "4", "--speed", "600", "--json", "--dir",
                             str(tmp_path / "demo")],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["readings_produced"] > 0
    assert summary["readings_committed"] == summary["readings_produced"]
    assert summary["refused"] == 0 and summary["batches"] > 0
    assert set(summary["qc_flags"]) <= {"good", "missing"}, summary["qc_flags"]  # simulated
    assert summary["kinds"] == ["airq-hj212", "aws-toa5", "hydro-tob1", "radar-cinrad"]
    radar = summary["radar_products"]
    assert radar["written"] > 0 and radar["identical"] == radar["registered"] == radar["written"]
    assert summary["latency_ms"]["p50"] is not None
    assert summary["latency_ms"]["p50"] <= summary["latency_ms"]["p99"]
    # monitoring as of the last simulated minute: every minute written arrived
    monitoring = summary["monitoring"]
    assert monitoring["completeness_percent"] == 100.0, monitoring
    assert monitoring["by_status"]["complete"] == 4, monitoring  # 3 stations and the radar
    assert "committed" in result.stderr  # progress was shown while it ran


def test_delimited_logger_files_reach_the_catalog(deployment):
    config = deployment.add_station_with_sources("HYDRO-1", "+02:00", """\
[sources.logger]
type = "directory"
format = "delimited"
path = "csv"
pattern = "*.csv"
poll_interval = 0.1
[sources.logger.options]
time_columns = "Date,Time"
time_format = "%d/%m/%Y %H:%M"
ignore_columns = "Record"
[sources.logger.elements]
"WL_m" = { element = "water_level", unit = "m" }
""")
    deployment.start_collector()
    (config.parent / "csv").mkdir()
    deployment.run_agent(config)
    (config.parent / "csv" / "wl.csv").write_text(
        "Date,Time,Record,WL_m\n01/03/2025,12:00,1,1.25\n01/03/2025,12:15,2,-9999\n")
    wait_until(lambda: deployment.catalog.count("observations") == 2, message="2 readings")
    assert deployment.catalog.query(
        "SELECT observed_at, element, value, unit, source_flag FROM observations "
        "ORDER BY observed_at") == [
        ("2025-03-01T10:00:00.000000Z", "water_level", 1.25, "m", None),
        ("2025-03-01T10:15:00.000000Z", "water_level", None, "m", "-9999")]


def test_tob1_files_reach_the_catalog(deployment):
    from datetime import datetime

    from obslink.demo.simulated_tob1 import write_tob1

    config = deployment.add_station_with_sources("TOB1-STATION", "+08:00", """\
[sources.logger]
type = "directory"
format = "tob1"
path = "tob1"
poll_interval = 0.1
[sources.logger.elements]
"AirTC_Avg" = "air_temperature"
""")
    binary, _ = write_tob1([("AirTC_Avg", "Deg C", "FP2"), ("BattV", "Volts", "IEEE4")],
                           [(datetime(2026, 3, 1, 8, minute), [20.5 + minute, 12.75])
                            for minute in range(3)])
    deployment.start_collector()
    (config.parent / "tob1").mkdir()
    deployment.run_agent(config)
    (config.parent / "tob1" / "CR1000X_Min.dat").write_bytes(binary)
    wait_until(lambda: deployment.catalog.count("observations") == 6, message="6 readings")
    assert deployment.catalog.query(  # Campbell's spelling of the unit, kept as its source
        "SELECT observed_at, element, value, unit, source_unit FROM observations "
        "WHERE element = 'air_temperature' ORDER BY observed_at") == [
        ("2026-03-01T00:00:00.000000Z", "air_temperature", 20.5, "degC", "Deg C"),
        ("2026-03-01T00:01:00.000000Z", "air_temperature", 21.5, "degC", "Deg C"),
        ("2026-03-01T00:02:00.000000Z", "air_temperature", 22.5, "degC", "Deg C")]


def test_bufr_files_reach_the_catalog(deployment):
    from tests.golden_cases import GOLDEN, case_input

    config = deployment.add_station_with_sources("0-20000-0-54527", "+08:00", """\
[sources.bufr]
type = "directory"
format = "bufr"
path = "bufr"
poll_interval = 0.1
[sources.bufr.options]
wigos_id = "0-20000-0-54527"
""")
    deployment.start_collector()
    (config.parent / "bufr").mkdir()
    deployment.run_agent(config)
    (config.parent / "bufr" / "ISMD01.bufr").write_bytes(
        case_input(GOLDEN / "bufr" / "compressed_three_stations"))
    wait_until(lambda: deployment.catalog.count("observations") == 6, message="6 readings")
    assert deployment.catalog.query(  # in the elements' units, exactly: 291.05 K is 17.9 °C
        "SELECT observed_at, element, value, unit, period_s, source_unit FROM observations "
        "WHERE element IN ('air_temperature', 'precipitation_amount') ORDER BY element") == [
        ("2025-11-03T06:00:00.000000Z", "air_temperature", 17.9, "degC", None, "K"),
        ("2025-11-03T00:00:00.000000Z", "precipitation_amount", 12.5, "mm", 21600, "kg m-2")]


def test_cma_hourly_and_minute_files_reach_the_catalog(deployment):
    from datetime import datetime

    from obslink.demo.simulated_cma import hourly_record, minute_line, minute_values, thousand_minus

    config = deployment.add_station_with_sources("0-20000-0-58238", "+08:00", """\
[sources.hourly]
type = "directory"
format = "cma_aws_hourly"
path = "awsnet"
pattern = "Z_SURF_I_*.txt"
poll_interval = 0.1
wait_for_path = true
[sources.minute]
type = "directory"
format = "cma_aws_minute"
path = "minute"
pattern = "AWS_M_Z_*.txt"
poll_interval = 0.1
""")
    deployment.start_collector()
    (config.parent / "minute").mkdir()
    deployment.run_agent(config)
    (config.parent / "awsnet").mkdir()  # appears after the agent started (wait_for_path)
    hour = datetime(2025, 1, 14, 6)
    (config.parent / "awsnet" / "Z_SURF_I_58238_20250114060000_O_AWS_FTM.txt").write_text(
        hourly_record("58238", hour))
    (config.parent / "awsnet" / "Z_SURF_I_58238_20250114060000_O_AWS_FTM-CCA.txt").write_text(
        hourly_record("58238", hour, {"T": thousand_minus(-14)}, correction="CCA"))
    minutes = config.parent / "minute" / "AWS_M_Z_58238_20250114.txt"
    with open(minutes, "w", newline="") as stream:  # ISOS appends a line a minute
        for hhmm in ("2359", "0000"):
            stream.write(minute_line(hhmm, minute_values(0)))
            stream.flush()
    wait_until(lambda: deployment.catalog.count("observations") == 2 * 131 + 2 * 47,
               message="two hourly records and two minutes")
    assert deployment.catalog.query(
        "SELECT observed_at, value, source_flag FROM observations WHERE source_field = 'T' "
        "ORDER BY value") == [("2025-01-14T06:00:00.000000Z", -1.4, "CCA qc=099"),
                              ("2025-01-14T06:00:00.000000Z", -1.2, "qc=099")]
    assert deployment.catalog.query(
        "SELECT observed_at FROM observations WHERE source_field = 'tempis' "
        "ORDER BY observed_at") == [("2025-01-13T15:59:00.000000Z",),
                                    ("2025-01-13T16:00:00.000000Z",)]
