"""An HJ 212 data acquisition unit pushing packets over TCP into a real agent and collector."""

from __future__ import annotations

import socket
import sqlite3

import pytest

from obslink.demo.broker import free_port
from obslink.plugins.hj212 import frame
from tests.conftest import wait_until

pytestmark = pytest.mark.e2e


def packet(time: str, value: float, flag: int = 5, cn: str = "2011") -> bytes:
    return frame(f"QN={time}000;ST=22;CN={cn};PW=123456;MN=AQ0001;Flag={flag};CP=&&"
                 f"DataTime={time};a34004-Rtd={value},a34004-Flag=N;a01001-Rtd=12.5&&".encode())


def read_replies(connection: socket.socket, count: int) -> list[bytes]:
    data = b""
    connection.settimeout(15)
    while data.count(b"\r\n") < count:
        chunk = connection.recv(4096)
        assert chunk, "the agent closed the connection"
        data += chunk
    return data.split(b"\r\n")[:count]


def test_packets_over_tcp_are_acknowledged_after_they_are_durable(deployment):
    port = free_port()
    config = deployment.add_station_with_sources("AQ-STATION-1", "+08:00", f"""\
[sources.dau]
type = "tcp"
format = "hj212"
listen = "127.0.0.1:{port}"
[sources.dau.options]
mn = "AQ0001"
""")
    directory = config.parent
    agent = deployment.run_agent(config)
    wait_until(lambda: f"listening on 127.0.0.1:{port}" in agent.log(), timeout=15,
               message="the agent to listen")
    first, second, third = (packet("20251103101500", 35.2), packet("20251103101600", 36.0),
                            packet("20251103101700", 37.5, flag=4))
    with socket.create_connection(("127.0.0.1", port)) as dau:
        dau.sendall(b"\x00\x00" + first + second[:50])  # a packet split across two writes
        dau.sendall(second[50:] + b"\x01\x03\x00\x00\x00\x0a\xc5\xcd" + third[2:])
        replies = read_replies(dau, 2)
        # no collector runs yet: the reply can only mean the readings are in the outbox
        with sqlite3.connect(f"file:{directory / 'outbox.db'}?mode=ro", uri=True) as outbox:
            waiting = outbox.execute("SELECT sum(readings) FROM batches").fetchone()[0]
        assert waiting >= 4
    assert all(b"CN=9014" in reply and b"MN=AQ0001" in reply for reply in replies)
    assert [reply.split(b";")[0] for reply in replies] == [
        b"##0069QN=20251103101500000", b"##0069QN=20251103101600000"]

    deployment.start_collector()
    wait_until(lambda: deployment.catalog.count("observations") == 6, message="6 readings")
    rows = deployment.catalog.query(
        "SELECT observed_at, element, value, unit, source_field, source_flag FROM observations "
        "WHERE element = 'pm2_5' ORDER BY observed_at")
    assert rows == [
        ("2025-11-03T02:15:00.000000Z", "pm2_5", 35.2, "ug/m3", "a34004-Rtd", "N"),
        ("2025-11-03T02:16:00.000000Z", "pm2_5", 36.0, "ug/m3", "a34004-Rtd", "N"),
        ("2025-11-03T02:17:00.000000Z", "pm2_5", 37.5, "ug/m3", "a34004-Rtd", "N")]
    adapters = deployment.catalog.query("SELECT DISTINCT adapter, source_stream FROM batches")
    assert adapters == [("hj212", "127.0.0.1")]


def test_agent_connects_out_to_a_device_and_replies_after_commit(deployment):
    """connect mode: the device listens, the agent dials it (and redials after a drop)."""
    device = socket.create_server(("127.0.0.1", 0))
    device.settimeout(20)
    port = device.getsockname()[1]
    config = deployment.add_station_with_sources("AQ-STATION-2", "+08:00", f"""\
[sources.dau]
type = "tcp"
format = "hj212"
connect = "127.0.0.1:{port}"
[sources.dau.options]
mn = "AQ0001"
""")
    deployment.start_collector()
    deployment.run_agent(config)
    with device:
        connection, _peer = device.accept()
        with connection:
            connection.sendall(packet("20251103101500", 40.0))
            assert b"CN=9014" in read_replies(connection, 1)[0]
        connection, _peer = device.accept()  # the agent dials again after the drop
        with connection:
            connection.sendall(packet("20251103101600", 41.0))
            assert b"CN=9014" in read_replies(connection, 1)[0]
    wait_until(lambda: deployment.catalog.count("observations") == 4, message="4 readings")


def test_a_hole_from_an_unreachable_unit_is_asked_for_filled_once_and_its_alarm_clears(
        deployment):
    """A unit that keeps history (demo/simulated_hj212.py) is unreachable for ten minutes;
    when it is back, the agent asks for those minutes with a history request, the answers
    fill the hole exactly once, and the station's completeness alarm clears."""
    from obslink.demo.simulated_hj212 import SimulatedDAU
    from obslink.plugins.hj212_history import local_text
    from obslink.readings import now_us

    dau = SimulatedDAU("AQHIST01", 8 * 60, {"a34004": 30.0, "a21026": 8.0})
    config = deployment.add_station_with_sources("AQ-HOLES", "+08:00", f"""\
[sources.dau]
type = "tcp"
format = "hj212"
connect = "127.0.0.1:{dau.port}"
reconnect_max = 1
[sources.dau.options]
mn = "AQHIST01"
history_requests = true
""")
    minute = 60_000_000
    first = now_us() // minute * minute - 25 * minute
    per_minute = 2  # factors
    deployment.start_collector(options=("--watch-every", "1s"))
    deployment.run_agent(config)

    def stored() -> int:
        return deployment.catalog.count("observations")

    def completeness_alarm(open_only: bool = True) -> list:
        return deployment.catalog.query(
            "SELECT id FROM alarms WHERE station = 'AQ-HOLES' AND rule = 'completeness'"
            + (" AND cleared_us IS NULL" if open_only else ""))
    try:
        wait_until(lambda: dau.connected, timeout=15, message="the agent to connect")
        for m in range(10):
            dau.measure(first + m * minute)
        wait_until(lambda: stored() == 10 * per_minute, timeout=30, message="10 minutes")
        dau.unreachable()
        for m in range(10, 20):  # measured while nobody could fetch them
            dau.measure(first + m * minute)
        wait_until(completeness_alarm, timeout=30, message="the completeness alarm")

        dau.reachable()
        wait_until(lambda: dau.connected, timeout=30, message="the agent to reconnect")
        for m in range(20, 25):
            dau.measure(first + m * minute)
        wait_until(lambda: stored() >= 25 * per_minute, timeout=60,
                   message="the hole filled by the unit's answers")
        wait_until(lambda: not completeness_alarm(), timeout=30,
                   message="the completeness alarm to clear")
    finally:
        dau.close()
    assert stored() == 25 * per_minute
    rows = deployment.catalog.query(
        "SELECT observed_us, element, count(*) FROM observation_values v JOIN series s "
        "ON s.id = v.series GROUP BY 1, 2")
    assert len(rows) == 25 * per_minute and all(count == 1 for *_, count in rows)
    assert [(r["CN"], r["BeginTime"], r["EndTime"]) for r in dau.requests] == [
        ("2051", local_text(first + 10 * minute, 480), local_text(first + 19 * minute, 480))]
    assert completeness_alarm(open_only=False)
