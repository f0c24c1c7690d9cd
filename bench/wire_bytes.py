"""Bytes on the wire per reading, protocol v1 against v2: `.venv/bin/python bench/wire_bytes.py
[--quick]`.

Real processes throughout: Mosquitto, the collector (`obslink collector serve`), and for each
scenario and protocol a real agent (`obslink agent run`) reading a simulated Campbell logger's
TOA5 file. Each agent reaches the broker through a proxy on loopback (bench/link_proxy.py)
that counts every MQTT PUBLISH on the station's data topic as whole packets: fixed and
variable header, topic, properties and payload, signature included.

Scenarios (issue 21's targets for v2 in brackets):

- live-20: single live one-minute records of 20 readings, one batch each [≤ 15 B/reading];
- live-7: the same with 7 readings [≤ 30];
- day-file: a day of one-minute 20-reading records read from one file [≤ 5];
- outage: a day of such records built up one record per batch while the link was cut,
  drained when it comes back [≤ 5].

Each agent first reports a few records live (its collector's ack announces v2; the bench
counts after that, as a station in service would be); the outage scenario's records
are committed one at a time while the proxy refuses the link. Also printed, v2 against v1 in
the same run: the collector's CPU time per reading (its processes' user + system time over
the drain scenarios) and the agent's peak RSS.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from link_proxy import LinkProxy  # noqa: E402

from obslink.demo.broker import Mosquitto  # noqa: E402
from obslink.demo.simulator import (KINDS, SimulatedLogger, StationKind,  # noqa: E402
                                    write_agent_config)
from obslink.keys import key_id, load_public_key, public_bytes, write_keypair  # noqa: E402
from obslink.readings import now_us  # noqa: E402
from obslink.server.catalog import AcceptedBatch, Station, open_catalog  # noqa: E402
from obslink.server.verify import verify_message  # noqa: E402
from obslink.server.verify_v2 import Contexts  # noqa: E402

NETWORK = "bench"
AWS20 = StationKind("aws20", "Min20", "+00:00", (
    ("AirTC_Avg", "Deg C", "Avg", "air_temperature"),
    ("AirTC_Max", "Deg C", "Max", "air_temperature"),
    ("AirTC_Min", "Deg C", "Min", "air_temperature"),
    ("RH", "%", "Smp", "relative_humidity"),
    ("RH_Max", "%", "Max", "relative_humidity"),
    ("BP_mbar", "mbar", "Avg", "air_pressure"),
    ("WS_ms_Avg", "meters/second", "Avg", "wind_speed"),
    ("WS_ms_Max", "meters/second", "Max", "wind_speed"),
    ("WindDir", "degrees", "Smp", "wind_direction"),
    ("Rain_mm_Tot", "mm", "Tot", "precipitation_amount"),
    ("SlrW_Avg", "W/m^2", "Avg", "solar_radiation"),
    ("SlrMJ_Tot", "MJ/m^2", "Tot", "solar_radiation_total"),
    ("PTemp_C", "Deg C", "Smp", "logger_temperature"),
    ("SoilT_5cm", "Deg C", "Avg", "soil_temperature"),
    ("SoilT_10cm", "Deg C", "Avg", "soil_temperature"),
    ("SoilT_20cm", "Deg C", "Avg", "soil_temperature"),
    ("VWC_5cm", "m^3/m^3", "Avg", "soil_moisture"),
    ("VWC_10cm", "m^3/m^3", "Avg", "soil_moisture"),
    ("WaterT_Avg", "Deg C", "Avg", "water_temperature"),
    ("BattV_Min", "Volts", "Min", "battery_voltage"),
))
TARGETS = {"live-20": 15, "live-7": 30, "day-file": 5, "outage": 5}
WARM_UP_RECORDS = 3


def minutes_before_now(minutes: int) -> datetime:
    """A whole minute, ``minutes`` before the present one: one-minute records from there
    end at the present."""
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    return now - timedelta(minutes=minutes)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """A process's CPU time with its children's (the collector's MQTT and product
    processes)."""
    children = [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
                for child in (task / "children").read_text().split()]
    return cpu_seconds(pid) + sum(tree_cpu_seconds(child) for child in children)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_for(condition, what: str, timeout: float = 600.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise SystemExit(f"wire_bytes: timed out waiting for {what}")
        time.sleep(interval)
    return result


class Station_:
    """One simulated station with its key, logger, agent config and agent process."""

    def __init__(self, base: Path, name: str, kind: StationKind, start: datetime,
                 interval_s: int, proxy_port: int, protocol: int,
                 realtime_window: float = 600.0) -> None:
        self.name, self.directory = name, base / name
        write_keypair(self.directory / "station.key", self.directory / "station.pub")
        self.logger = SimulatedLogger(name, kind, self.directory / "logger", start,
                                      interval_s=interval_s, nan_every=10**9)
        self.outbox = self.directory / "outbox.db"
        self.config = write_agent_config(self.directory / "agent.toml", self.logger, NETWORK,
                                         f"mqtt://127.0.0.1:{proxy_port}",
                                         self.directory / "station.key", self.outbox,
                                         poll_interval=0.05)
        self.config.write_text(self.config.read_text().replace(
            "[uplink]\n", f"[uplink]\nprotocol = {protocol}\nbacklog_readings_per_s = 0\n"
            f"realtime_window = {realtime_window}\n"))
        self.agent: subprocess.Popen | None = None
        self.peak_rss = 0.0

    def enrol(self, catalog_path: Path) -> None:
        catalog = open_catalog(catalog_path)
        public = load_public_key(self.directory / "station.pub")
        catalog.add_station(Station(self.name, NETWORK), public_bytes(public), key_id(public))
        catalog.close()

    def start(self) -> None:
        self.agent = subprocess.Popen([sys.executable, "-m", "obslink", "--log-level",
                                       "warning", "agent", "run", str(self.config)])

    def stop(self) -> None:
        if self.agent is not None:
            self.peak_rss = max(self.peak_rss, peak_rss_mb(self.agent.pid))
            self.agent.terminate()
            self.agent.wait()
            self.agent = None

    def outbox_batches(self) -> int:
        """Batches the agent's outbox has made so far (its next sequence number)."""
        try:
            with sqlite3.connect(f"file:{self.outbox}?mode=ro", uri=True) as conn:
                return int(conn.execute("SELECT value FROM meta WHERE key = 'next_seq'"
                                        ).fetchone()[0])
        except (sqlite3.Error, TypeError):
            return 0


class Bench:
    def __init__(self, base: Path, broker: Mosquitto, protocol: int) -> None:
        self.base, self.protocol = base / f"v{protocol}", protocol
        self.base.mkdir()
        self.catalog_path = self.base / "catalog.db"
        open_catalog(self.catalog_path).close()
        self.proxy = LinkProxy(broker.port, keep_payloads=True).start()
        self.keys: dict[str, dict] = {}  # station -> {key id: (public key, status)}
        self.drain_messages: list[tuple[str, bytes]] = []  # the drains' data messages
        self.collector = subprocess.Popen(
            [sys.executable, "-m", "obslink", "--log-level", "warning", "collector", "serve",
             "--db", str(self.catalog_path), "--broker", broker.url,
             "--group", f"wire-bytes-v{protocol}", "--watch-every", "0"])
        self.results: dict[str, float] = {}
        self.collector_cpu = 0.0
        self.drained = 0  # readings of the drain scenarios
        self.agent_rss = 0.0

    def close(self) -> None:
        self.collector.terminate()
        self.collector.wait()
        self.proxy.stop()

    def readings(self, station: str) -> int:
        with sqlite3.connect(f"file:{self.catalog_path}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT count(*) FROM observations WHERE station = ?",
                                (station,)).fetchone()[0]

    def station(self, name: str, kind: StationKind, start: datetime,
                realtime_window: float = 600.0) -> Station_:
        station = Station_(self.base, name, kind, start, 60, self.proxy.port, self.protocol,
                           realtime_window)
        station.enrol(self.catalog_path)
        public = load_public_key(station.directory / "station.pub")
        self.keys[name] = {key_id(public): (public_bytes(public), "active")}
        return station

    def write_and_wait(self, station: Station_, records: int) -> None:
        """Records one at a time, each committed at the centre before the next."""
        for _ in range(records):
            station.logger.write_next()
            expected = station.logger.records * station.logger.values_per_record
            wait_for(lambda: self.readings(station.name) >= expected,
                     f"{station.name}'s record {station.logger.records}")

    def measure(self, name: str, since: float, readings: int) -> None:
        published = self.proxy.published(since)
        self.results[name] = sum(p.size for p in published) / readings
        if name in ("day-file", "outage"):
            self.drain_messages += [(p.resolved, p.payload) for p in published]

    def live(self, name: str, kind: StationKind, records: int) -> None:
        # a record is live for an hour here, so that these records (a minute apart, whole
        # minutes, as a logger writes them, ending at the present) all travel as live data
        station = self.station(name, kind, minutes_before_now(records + WARM_UP_RECORDS),
                               realtime_window=3600)
        station.start()
        self.write_and_wait(station, WARM_UP_RECORDS)
        since = time.monotonic()
        self.write_and_wait(station, records)
        self.measure(name, since, records * len(kind.columns))
        station.stop()
        self.agent_rss = max(self.agent_rss, station.peak_rss)

    def day_file(self, records: int) -> None:
        station = self.station("DAYFILE", AWS20,
                               minutes_before_now(records + WARM_UP_RECORDS + 1))
        station.start()
        self.write_and_wait(station, WARM_UP_RECORDS)
        station.stop()
        for _ in range(records):  # the day's file, read in one go when the agent returns
            station.logger.write_next()
        self.drain("day-file", station, records, station.start)

    def outage(self, records: int) -> None:
        station = self.station("OUTAGE", AWS20,
                               minutes_before_now(records + WARM_UP_RECORDS + 1))
        station.start()
        self.write_and_wait(station, WARM_UP_RECORDS)
        self.proxy.cut()
        first = station.outbox_batches()
        for number in range(1, records + 1):  # one record per batch, as an outage makes them
            station.logger.write_next()
            wait_for(lambda: station.outbox_batches() >= first + number,
                     "the agent's outbox to take a record", interval=0.01)
            if number % 200 == 0:
                print(f"  v{self.protocol} outage: {number}/{records} records in the outbox",
                      file=sys.stderr)
        self.drain("outage", station, records, self.proxy.restore)

    def drain(self, name: str, station: Station_, records: int, begin) -> None:
        """Measure the drain of ``records`` waiting records that ``begin`` lets go."""
        expected = station.logger.records * station.logger.values_per_record
        since, cpu = time.monotonic(), tree_cpu_seconds(self.collector.pid)
        begin()
        wait_for(lambda: self.readings(station.name) >= expected, f"the {name} backlog")
        self.collector_cpu += tree_cpu_seconds(self.collector.pid) - cpu
        self.drained += records * len(AWS20.columns)
        self.measure(name, since, records * len(AWS20.columns))
        station.stop()
        self.agent_rss = max(self.agent_rss, station.peak_rss)


def collector_cpu_per_reading(bench: Bench, rounds: int = 3) -> float:
    """CPU seconds per reading the collector's own code spends on the drains' messages,
    exactly as they crossed the wire: verified (v2: contexts resolved, bodies rebuilt and
    decoded) and committed to a fresh SQLite catalog, in groups as the collector takes
    them; best of ``rounds`` in this process (the collector's processes share the machine
    with the agents and the broker, so timing them is noisier)."""
    best = float("inf")
    # contexts the agents sent before the drains (with their live records) are the
    # bench's collector's to give
    held = open_catalog(bench.catalog_path)
    for round_ in range(rounds):
        path = bench.base / f"cpu-{round_}.db"
        catalog = open_catalog(path)
        for station, keys in bench.keys.items():
            (kid, (raw, _status)), = keys.items()
            catalog.add_station(Station(station, NETWORK), raw, kid)
        contexts = Contexts(held.batch_context)
        started = time.process_time()
        for first in range(0, len(bench.drain_messages), 64):
            accepted = [outcome for topic, payload in bench.drain_messages[first:first + 64]
                        for outcome in verify_message(topic, payload, now_us(),
                                                      bench.keys.get, None, contexts)
                        if isinstance(outcome, AcceptedBatch)]
            catalog.commit(accepted)
        best = min(best, time.process_time() - started)
        stored = catalog.stats()["observations"]
        catalog.close()
        if stored < bench.drained:
            raise SystemExit(f"wire_bytes: the replay stored {stored} readings of "
                             f"{bench.drained}")
    held.close()
    return best / stored


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer records (6 hours instead of a day of backlog)")
    args = parser.parse_args()
    live_records, day = (10, 360) if args.quick else (30, 1440)
    results: dict[int, Bench] = {}
    with tempfile.TemporaryDirectory(prefix="obslink-wire-") as tmp, \
            Mosquitto(Path(tmp) / "broker") as broker:
        for protocol in (1, 2):
            bench = Bench(Path(tmp), broker, protocol)
            try:
                print(f"protocol v{protocol}: live records …", file=sys.stderr)
                bench.live("live-20", AWS20, live_records)
                bench.live("live-7", KINDS[0], live_records)
                print(f"protocol v{protocol}: a day's file of {day} records …",
                      file=sys.stderr)
                bench.day_file(day)
                print(f"protocol v{protocol}: an outage of {day} records …", file=sys.stderr)
                bench.outage(day)
            finally:
                bench.close()
            results[protocol] = bench
        v1, v2 = results[1], results[2]
        own1, own2 = collector_cpu_per_reading(v1), collector_cpu_per_reading(v2)
    print(f"\nbytes on the wire per reading (whole MQTT PUBLISH packets; {live_records} live "
          f"records, a backlog of {day} one-minute records)")
    print(f"{'scenario':<10} {'v1':>8} {'v2':>8} {'v2/v1':>7} {'target':>7}")
    for name, target in TARGETS.items():
        a, b = v1.results[name], v2.results[name]
        verdict = "met" if b <= target else "MISSED"
        print(f"{name:<10} {a:8.1f} {b:8.1f} {b / a:7.3f} {target:>5} B  {verdict}")
    cpu1, cpu2 = v1.collector_cpu / v1.drained, v2.collector_cpu / v2.drained
    print(f"collector processes' CPU per reading over the drains: v1 {cpu1 * 1e6:.1f} µs, "
          f"v2 {cpu2 * 1e6:.1f} µs, v2/v1 {cpu2 / cpu1:.2f} (noisy: the machine is shared)")
    print(f"collector verify + commit CPU per reading, the drains' messages replayed: v1 "
          f"{own1 * 1e6:.2f} µs, v2 {own2 * 1e6:.2f} µs, v2/v1 {own2 / own1:.2f} "
          "(target ≤ 1)")
    print(f"agent peak RSS: v1 {v1.agent_rss:.1f} MB, v2 {v2.agent_rss:.1f} MB, v2/v1 "
          f"{v2.agent_rss / v1.agent_rss:.2f} (target ≤ 1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
