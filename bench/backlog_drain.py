"""Backlog drain under live load: `.venv/bin/python bench/backlog_drain.py [--quick]
[--collectors N] [--db sqlite|postgresql]`.

A fleet of one-minute stations (default 1,000) comes back from a 24-hour outage and drains
its backlog while every station keeps reporting live, one record a minute. Printed: the
drain rate (readings/s) and the live latency (a live minute committed in the station's
outbox → the collector's ack for it, which is sent after the catalog commit) at p50/p99,
during the drain and with no backlog at all, measured in the same run, as a ratio.
Targets (issue 5): live p99 during the drain ≤ 2 s and ≤ 3× the no-backlog p99; drain
≥ 50,000 readings/s on a 2-core machine. The drain rate is also printed as a ratio of the
collector alone, measured in the same run (the first stations' backlog verified and
committed in-process, no broker, no fleet): the machine's speed varies by 2-3× from hour
to hour, and the baseline shows what the machine gave the run.

What is real: Mosquitto, the collector process with its SQLite catalog (`--db postgresql`:
a durable PostgreSQL the bench starts on this machine), and on the station
side the agent's own code (OutboxSink with every QC check, Outbox, Uplink with its lanes,
bundles, rate caps and in-flight window), one outbox file and one Ed25519 key per station. What is
simulated: the gateways. A thousand agent processes do not fit on two cores, so a few fleet
processes run the stations' agent code, each station with its own MQTT connection and
uplink thread (at most STATIONS_PER_PROCESS a process: paho waits on its sockets with
select(), which takes no file descriptor above 1023), and the outboxes run with
`synchronous=OFF` because a thousand gateways do not share one disk's fsyncs.
At the end the catalog must hold exactly the readings produced, none twice.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import multiprocessing
import os
import queue
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from contextlib import ExitStack
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from obslink import wire
from obslink.agent.config import AgentConfig
from obslink.agent.outbox import Outbox
from obslink.agent.runner import OutboxSink
from obslink.agent.uplink import Uplink
from obslink.demo.broker import Mosquitto
from obslink.demo.postgres import PostgresServer, collector_file_options
from obslink.keys import key_id, public_bytes
from obslink.plugins.formats import Decoded
from obslink.plugins.qc_limits import default_settings
from obslink.plugins.qc_runner import QCRunner
from obslink.plugins.registry import load_registry
from obslink.plugins.sources import ChunkOrigin, SourcePosition
from obslink.plugins.toa5 import TOA5Adapter
from obslink.readings import Reading, now_us
from obslink.server.catalog import Catalog, Station, open_catalog
from obslink.demo.simulator import KINDS, PLAUSIBLE

NETWORK = "bench"
MINUTE_US = 60_000_000
COLUMNS = KINDS[0].columns  # the demo's automatic weather station: 7 elements a minute
REALTIME_WINDOW = 600.0
CAPACITY_STATIONS = 50  # whose backlog measures the collector alone


def minute_readings(observed_at: int, rng: random.Random) -> list[Reading]:
    phase = 2 * math.pi * (observed_at // MINUTE_US % 1440) / 1440
    readings = []
    for index, (source_field, unit, _processing, element) in enumerate(COLUMNS):
        mean, amplitude = PLAUSIBLE[element]
        value = mean + amplitude * (math.sin(phase + index) + rng.uniform(-.02, .02))
        readings.append(Reading(observed_at, element, round(max(value, 0.0)
                                if mean - amplitude >= 0 else value, 3), unit, source_field))
    return readings


def private_bytes(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def station_id(index: int) -> str:
    return f"0-20000-0-{10000 + index}"


def new_sink(outbox: Outbox, wake: threading.Event | None = None) -> OutboxSink:
    """The agent's commit path; ``wake`` is the uplink's, set when a batch is committed."""
    qc = QCRunner.from_registry(load_registry(), default_settings())
    return OutboxSink(outbox, len(COLUMNS), wake or threading.Event(), qc)


def commit_minutes(sink: OutboxSink, minutes: list[int], rng: random.Random,
                   offset: int) -> tuple[list[int], int]:
    readings = [r for minute in minutes for r in minute_readings(minute, rng)]
    origin = ChunkOrigin("logger", "Min1.dat", offset, offset + 1, hashlib.sha256().digest())
    created = sink.commit(origin, Decoded(readings, [], 1), SourcePosition(offset + 1, "1:1", {}),
                          TOA5Adapter())
    return created, offset + 1


def build_backlogs(args: tuple[Path, list[int], int, int]) -> int:
    """A worker process: outboxes holding ``hours`` of one-minute records per station,
    committed through the agent's own sink (QC included), one batch a minute."""
    directory, indexes, hours, newest = args
    readings = 0
    for index in indexes:
        outbox = Outbox(directory / f"{station_id(index)}.db", station_id(index), "OFF")
        minutes = [newest - m * MINUTE_US for m in range(hours * 60, 0, -1)]
        created, _ = commit_minutes(new_sink(outbox), minutes, random.Random(index), 0)
        readings += len(created) * len(COLUMNS)
        outbox.close()
    return readings


@dataclass(frozen=True)
class FleetPlan:
    """How a fleet runs beyond its backlog (other benches vary it): the agents' protocol
    setting, seconds between a station's live records, and which stations (by index) have
    the backlog (None: all)."""

    protocol: int = AgentConfig.protocol
    live_every: float = 60.0
    backlog_stations: frozenset[int] | None = None

    def backlog_of(self, index: int, backlog_seqs: int) -> int:
        stations = self.backlog_stations
        return backlog_seqs if stations is None or index in stations else 0


class MeasuredUplink(Uplink):
    """The agent's uplink, unchanged, telling the fleet about each ack it takes."""

    fleet: "Fleet"
    station: "SimStation"

    def take_ack(self, payload: bytes) -> None:
        self.fleet.record_ack(self.station, payload)
        super().take_ack(payload)


@dataclass
class SimStation:
    id: str
    outbox: Outbox
    sink: OutboxSink
    uplink: Uplink
    backlog_last_seq: int  # seqs 1..this are the backlog
    backlog_acked: bytearray = field(init=False)
    live_committed: dict[int, float] = field(default_factory=dict)  # seq -> monotonic time
    offset: int = 0

    def __post_init__(self) -> None:
        self.backlog_acked = bytearray(self.backlog_last_seq + 1)


class Fleet:
    """Some stations' agent code (sink, outbox, uplink with its own MQTT connection and
    pump thread) in one process; a thread commits each station's live minute."""

    def __init__(self, directory: Path, keys: dict[int, Ed25519PrivateKey], broker_port: int,
                 backlog_seqs: int, bundle: int, plan: FleetPlan = FleetPlan()) -> None:
        self.stations: dict[str, SimStation] = {}
        self.plan = plan
        # (committed at, latency s, station id) of each live record
        self.latencies: list[tuple[float, float, str]] = []
        self.backlog_remaining = 0
        self.lock = threading.Lock()
        self.stop_live = threading.Event()
        for index, key in keys.items():
            sid = station_id(index)
            seqs = plan.backlog_of(index, backlog_seqs)
            outbox = Outbox(directory / f"{sid}.db", sid, "OFF")
            config = AgentConfig(path=directory, station=sid, network=NETWORK,
                                 # keys live in memory: no key file to watch for rotation
                                 private_key=directory / "in-memory.key",
                                 outbox_path=outbox.path,
                                 synchronous="OFF", max_batch_readings=len(COLUMNS),
                                 broker_host="127.0.0.1", broker_port=broker_port,
                                 client_id=f"bench-{sid}", keepalive=60, ack_timeout=30,
                                 max_in_flight=64, reconnect_min=1, reconnect_max=5,
                                 realtime_window=REALTIME_WINDOW, backlog_bundle=bundle,
                                 protocol=plan.protocol)
            uplink = MeasuredUplink(config, outbox, key)
            station = SimStation(sid, outbox, new_sink(outbox, uplink.wake), uplink, seqs)
            uplink.fleet, uplink.station = self, station
            station.offset = seqs + 1
            self.stations[sid] = station
            self.backlog_remaining += seqs
        self.backlog_total = self.backlog_remaining
        self.live_thread = threading.Thread(target=self._report_live, daemon=True)

    def connect(self) -> None:
        """Every station connects; none publishes before :meth:`start_publishing`, so that
        the drain is timed from the moment the whole fleet is there."""
        for station in self.stations.values():
            station.uplink.connect()
            time.sleep(0.005)  # a thousand gateways do not all dial in the same millisecond
        deadline = time.monotonic() + 120
        while not all(s.uplink.connected for s in self.stations.values()):
            if time.monotonic() > deadline:
                raise SystemExit("the fleet's stations could not all connect in 120 s")
            time.sleep(0.1)

    def start_publishing(self) -> None:
        for station in self.stations.values():
            station.uplink.start_publishing()

    def close(self) -> None:
        self.stop_live.set()
        self.live_thread.join()
        with ThreadPoolExecutor(64) as pool:  # each stop waits for its own disconnect
            list(pool.map(lambda station: station.uplink.stop(), self.stations.values()))
        for station in self.stations.values():
            station.outbox.close()

    def backlog_acked(self) -> int:
        return self.backlog_total - self.backlog_remaining

    def record_ack(self, station: SimStation, payload: bytes) -> None:
        ack = wire.decode_ack(payload)
        arrived = time.monotonic()
        with self.lock:
            for seq in ack.committed:
                committed = station.live_committed.pop(seq, None)
                if committed is not None:
                    self.latencies.append((committed, arrived - committed, station.id))
                elif seq <= station.backlog_last_seq and not station.backlog_acked[seq]:
                    station.backlog_acked[seq] = 1
                    self.backlog_remaining -= 1

    def _report_live(self) -> None:
        """Every station commits its newest minute once a minute (``live_every`` seconds),
        spread over the minute."""
        stations = list(self.stations.values())
        rng = random.Random(1)
        started = time.monotonic()
        tick = 0
        while not self.stop_live.is_set():
            station = stations[tick % len(stations)]
            due = started + tick * self.plan.live_every / len(stations)
            time.sleep(max(0.0, due - time.monotonic()))
            if self.stop_live.is_set():
                return
            with self.lock:  # so that its ack cannot be taken before it is recorded
                created, station.offset = commit_minutes(station.sink, [now_us()], rng,
                                                         station.offset)
                committed = time.monotonic()
                for seq in created:
                    station.live_committed[seq] = committed
            tick += 1

    def pending_live(self) -> int:
        with self.lock:
            return sum(len(s.live_committed) for s in self.stations.values())


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def collector_cpu_seconds(pid: int) -> float:
    """A collector's CPU time with its child processes' (a plugin's decoder, say)."""
    children = [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
                for child in (task / "children").read_text().split()]
    return cpu_seconds(pid) + sum(cpu_seconds(child) for child in children)


def collector_share(conn, since_us: int) -> list[float]:
    """Seconds each live batch observed from ``since_us`` on spent in the collector, from
    its arrival there to the writing of its group (the catalog's received_at and
    committed_at); the rest of a live minute's latency is the fleet's, the broker's and
    the ack's way back."""
    return [(datetime.fromisoformat(committed) - datetime.fromisoformat(received))
            .total_seconds()
            for received, committed in conn.execute(
                "SELECT b.received_at, b.committed_at FROM batches b JOIN observation_values v "
                "ON v.id = b.first_row WHERE v.observed_us >= ?", (since_us,))]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


STATIONS_PER_PROCESS = 120


def fleet_worker(number: int, directory: Path, keys: dict[int, bytes], broker_port: int,
                 backlog_seqs: int, bundle: int, go, stop, reports,
                 plan: FleetPlan = FleetPlan()) -> None:
    """A fleet process: connect, report, run live until ``stop``, send the latencies."""
    fleet = Fleet(directory, {index: Ed25519PrivateKey.from_private_bytes(raw)
                              for index, raw in keys.items()}, broker_port, backlog_seqs,
                  bundle, plan)
    fleet.connect()
    reports.put(("connected", number, 0, 0))
    go.wait()
    cpu_at_go = time.process_time()  # this process's CPU: the stations' agent code
    fleet.start_publishing()
    fleet.live_thread.start()
    while not stop.wait(0.5):
        reports.put(("progress", number, fleet.backlog_acked(), len(fleet.latencies)))
    fleet.stop_live.set()  # no more live minutes; wait for the ones in flight
    fleet.live_thread.join()
    deadline = time.monotonic() + 120
    while fleet.pending_live() and time.monotonic() < deadline:
        time.sleep(0.1)
    reports.put(("done", number, fleet.backlog_acked(),
                 (fleet.latencies, time.process_time() - cpu_at_go)))
    fleet.close()


def enrol_stations(catalog: Catalog, keys: list[Ed25519PrivateKey]) -> None:
    """Station ``index`` of the fleet, with the public half of ``keys[index]``."""
    for index, key in enumerate(keys):
        public = key.public_key()
        catalog.add_station(Station(station_id(index), NETWORK, interval_seconds=60),
                            public_bytes(public), key_id(public))


def collector_capacity(outboxes: Path, keys: list[Ed25519PrivateKey], stations: int,
                       bundle: int, scratch: Path, location: str | None = None
                       ) -> tuple[float, int]:
    """The baseline for the drain rate, measured in the same run: readings/s that the
    collector's own code takes in (groups, signature checks, decoding, catalog commit) with
    nothing else on the machine. The first ``stations`` outboxes' backlog goes, in bundles
    and interleaved across stations as a broker would deliver it, straight into a scratch
    catalog: no broker, no fleet. The outboxes are only read."""
    from paho.mqtt.client import MQTTMessage

    from obslink.server.collector import Collector

    catalog = open_catalog(location or scratch / "capacity.db")
    enrol_stations(catalog, keys[:stations])
    per_station = []
    for index, key in enumerate(keys[:stations]):
        public = key.public_key()
        outbox = Outbox(outboxes / f"{station_id(index)}.db", station_id(index), "OFF")
        bodies = [body for _seq, body in outbox.unsent(1_000_000, set())]
        outbox.close()
        topic = wire.data_topic(NETWORK, station_id(index))
        per_station.append([(topic, wire.sign_bundle(bodies[i:i + bundle], topic, key,
                                                     key_id(public)))
                            for i in range(0, len(bodies), bundle)])
    collector = Collector(catalog, "127.0.0.1", 1)  # never connects: acks stay queued
    for messages in zip(*per_station):  # a bundle from each station in turn
        for topic, payload in messages:
            message = MQTTMessage(topic=topic.encode())
            message.payload = payload
            collector._on_message(None, None, message)  # as the broker would hand it over
    started = time.perf_counter()
    while group := collector._take_group(timeout=0):
        collector.process(group)
    collector.flush()  # the last group's commit
    elapsed = time.perf_counter() - started
    readings = catalog.stats()["observations"]
    catalog.close()
    return readings / elapsed, readings


def run_phase(directory: Path, keys: list[bytes], broker_port: int, backlog_seqs: int,
              bundle: int, seconds: float | None, label: str, plan: FleetPlan = FleetPlan(),
              raw: list | None = None) -> tuple[list[float], float, int, float]:
    """Live for ``seconds`` (None: until the backlog is acked). Returns the latencies of the
    live minutes committed during the phase, its duration, every live minute acked, and
    the CPU-seconds the fleet's processes used; ``raw`` gets (committed at, latency,
    station) of each, committed at relative to the phase's start."""
    context = multiprocessing.get_context("spawn")  # fresh interpreters, no inherited threads
    go, stop, reports = context.Event(), context.Event(), context.Queue()
    slices = [dict(list(enumerate(keys))[i:i + STATIONS_PER_PROCESS])
              for i in range(0, len(keys), STATIONS_PER_PROCESS)]
    workers = [context.Process(target=fleet_worker, args=(number, directory, part, broker_port,
                                                          backlog_seqs, bundle, go, stop,
                                                          reports, plan),
                               daemon=True)  # ended with the bench, whatever ends it
               for number, part in enumerate(slices)]
    for worker in workers:
        worker.start()
    for _ in workers:
        kind, number, *_ = reports.get(timeout=300)
        assert kind == "connected", (kind, number)
    total = sum(plan.backlog_of(index, backlog_seqs) for index in range(len(keys)))
    acked_by_worker = [0] * len(workers)
    go.set()
    started = time.monotonic()
    last_print = started
    while True:
        try:
            kind, number, acked, _live = reports.get(timeout=0.2)
            acked_by_worker[number] = acked
        except queue.Empty:
            pass
        now = time.monotonic()
        acked_total = sum(acked_by_worker)
        if seconds is not None and now - started >= seconds:
            break
        if seconds is None and acked_total >= total:
            break
        if now - last_print >= 5:
            last_print = now
            print(f"  {label}: {now - started:5.0f} s, backlog {acked_total * len(COLUMNS):,} "
                  f"of {total * len(COLUMNS):,} readings acked", flush=True)
        if now - started > 3600:
            raise SystemExit(f"{label}: not done after an hour")
    elapsed = time.monotonic() - started
    stop.set()
    latencies: list[tuple[float, float, str]] = []
    done, fleet_cpu = 0, 0.0
    while done < len(workers):
        kind, _number, _acked, report = reports.get(timeout=300)
        if kind == "done":
            done += 1
            latencies.extend(report[0])
            fleet_cpu += report[1]
    for worker in workers:
        worker.join(60)
    in_phase = [item for item in latencies if item[0] <= started + elapsed]
    if raw is not None:
        raw += [(committed - started, latency, station)
                for committed, latency, station in in_phase]
    return [latency for _committed, latency, _station in in_phase], elapsed, \
        len(latencies), fleet_cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stations", type=int, default=1000)
    parser.add_argument("--hours", type=int, default=24, help="backlog per station")
    parser.add_argument("--baseline-seconds", type=float, default=60,
                        help="live-only phase that measures latency with no backlog")
    parser.add_argument("--collectors", type=int, default=1,
                        help="collector workers sharing the load (one catalog)")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite",
                        help="the catalog's backend (postgresql: a durable server the bench "
                        "starts on this machine; the collector alone is measured on it too)")
    parser.add_argument("--bundle", type=int, default=AgentConfig.backlog_bundle,
                        help="backlog batches per message (the agent's uplink.backlog_bundle)")
    parser.add_argument("--protocol", type=int, choices=(1, 2), default=AgentConfig.protocol,
                        help="the agents' protocol setting (2: v2 once the collector "
                        "announces it)")
    parser.add_argument("--quick", action="store_true",
                        help="100 stations, 2 hours of backlog, 20 s baseline")
    args = parser.parse_args()
    plan = FleetPlan(protocol=args.protocol)
    # stopped with SIGTERM, the bench still stops its broker, collector and fleet and
    # deletes its files (Python's default would leave them running)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.quick:
        args.stations, args.hours, args.baseline_seconds = 100, 2, 20

    with tempfile.TemporaryDirectory(prefix="obslink-drain-") as tmp, ExitStack() as stack:
        base = Path(tmp)
        keys = [Ed25519PrivateKey.generate() for _ in range(args.stations)]
        catalog_path, capacity_location, beside = str(base / "catalog.db"), None, []
        if args.db == "postgresql":
            postgres = stack.enter_context(PostgresServer(base / "postgres", durable=True))
            catalog_path, capacity_location = map(postgres.schema_url, ("drain", "capacity"))
            beside = collector_file_options(catalog_path, base)
        catalog = open_catalog(catalog_path)
        enrol_stations(catalog, keys)
        catalog.close()

        print(f"building {args.stations} outboxes with {args.hours} h of one-minute "
              f"records each ({len(COLUMNS)} readings a minute) …", flush=True)
        (base / "backlog").mkdir()
        (base / "baseline").mkdir()
        newest = now_us() // MINUTE_US * MINUTE_US - int(REALTIME_WINDOW) * 1_000_000
        started = time.perf_counter()
        chunks = [list(range(args.stations))[i::2] for i in range(2)]
        with multiprocessing.Pool(2) as pool:
            backlog_readings = sum(pool.map(
                build_backlogs, [(base / "backlog", chunk, args.hours, newest)
                                 for chunk in chunks]))
        print(f"  {backlog_readings:,} readings in "
              f"{args.stations * args.hours * 60:,} batches, "
              f"{time.perf_counter() - started:.0f} s", flush=True)

        capacity_stations = min(args.stations, CAPACITY_STATIONS)
        print(f"collector alone: the backlog of {capacity_stations} stations straight into a "
              "scratch catalog …", flush=True)
        capacity, capacity_readings = collector_capacity(
            base / "backlog", keys, capacity_stations, args.bundle, base, capacity_location)
        print(f"  {capacity_readings:,} readings, {capacity:,.0f} readings/s", flush=True)

        with Mosquitto(base / "broker", persistence=False) as broker:
            # several workers share the stations through one shared-subscription group
            collectors = [subprocess.Popen(
                [sys.executable, "-m", "obslink", "--log-level", "warning", "collector",
                 "serve", "--db", str(catalog_path), "--broker", broker.url,
                 "--client-id", f"bench-collector-{n}", *beside])
                for n in range(args.collectors)]
            try:
                time.sleep(1.5)  # let the collector subscribe
                print(f"no backlog: {args.stations} stations live for "
                      f"{args.baseline_seconds:.0f} s …", flush=True)
                raw_keys = [private_bytes(key) for key in keys]
                base_latency, _, base_live, _ = run_phase(
                    base / "baseline", raw_keys, broker.port, 0, args.bundle,
                    args.baseline_seconds, "no backlog", plan)
                print("backlog drain while every station reports live …", flush=True)
                cpu_before = sum(collector_cpu_seconds(c.pid) for c in collectors)
                broker_before = cpu_seconds(broker.process.pid)
                drain_raw: list = []
                drain_from_us = now_us()  # the drain phase's live minutes are observed later
                drain_latency, drain_seconds, drain_live, fleet_cpu = run_phase(
                    base / "backlog", raw_keys, broker.port, args.hours * 60, args.bundle,
                    None, "drain", plan, drain_raw)
                collector_cpu = sum(collector_cpu_seconds(c.pid) for c in collectors) - \
                    cpu_before
                broker_cpu = cpu_seconds(broker.process.pid) - broker_before
                live_total = base_live + drain_live
                expected = backlog_readings + live_total * len(COLUMNS)
                time.sleep(1)
                reader = open_catalog(catalog_path)
                try:
                    stored = reader.stats()["observations"]
                    in_collector = collector_share(reader.conn, drain_from_us)
                finally:
                    reader.close()
            finally:
                for collector in collectors:
                    collector.terminate()
                    collector.wait()

    drain_rate = backlog_readings / drain_seconds
    p50_base, p99_base = percentile(base_latency, .5), percentile(base_latency, .99)
    p50_drain, p99_drain = percentile(drain_latency, .5), percentile(drain_latency, .99)
    print()
    print(f"drain: {backlog_readings:,} readings of backlog in {drain_seconds:.1f} s = "
          f"{drain_rate:,.0f} readings/s (target ≥ 50,000)")
    print(f"collector alone (same run, {capacity_stations} stations, no broker, no fleet): "
          f"{capacity:,.0f} readings/s; drain / collector alone = {drain_rate / capacity:.2f}")
    print(f"live latency, no backlog:   p50 {p50_base * 1000:6.0f} ms   p99 "
          f"{p99_base * 1000:6.0f} ms   ({len(base_latency)} live minutes)")
    print(f"live latency, during drain: p50 {p50_drain * 1000:6.0f} ms   p99 "
          f"{p99_drain * 1000:6.0f} ms   ({len(drain_latency)} live minutes)")
    print(f"ratio during drain / no backlog: p50 {p50_drain / p50_base:.2f}×, p99 "
          f"{p99_drain / p99_base:.2f}× (target p99 ≤ 2 s and ≤ 3×)")
    print(f"  of which in the collector (arrived → its group written): p50 "
          f"{percentile(in_collector, .5) * 1000:6.0f} ms   p99 "
          f"{percentile(in_collector, .99) * 1000:6.0f} ms   ({len(in_collector)} live "
          "batches)")
    # where in the drain the slow live minutes fall (the whole fleet starts draining at once)
    thirds = [[latency for at, latency, _station in drain_raw
               if part * drain_seconds / 3 <= at < (part + 1) * drain_seconds / 3]
              for part in range(3)]
    print("live p99 in each third of the drain: " + ", ".join(
        f"{percentile(third, .99) * 1000:.0f} ms" if third else "-" for third in thirds))
    print(f"collector ({args.collectors} worker(s)): {collector_cpu:.0f} CPU-seconds in the "
          f"drain phase = "
          f"{backlog_readings / collector_cpu:,.0f} readings per CPU-second of the collector "
          f"(the simulated fleet shares the machine's cores with it)")
    print(f"CPU-seconds in the drain phase ({drain_seconds:.0f} s on {os.cpu_count()} cores): "
          f"collector {collector_cpu:.0f}, fleet {fleet_cpu:.0f}, Mosquitto {broker_cpu:.0f}")
    print(f"catalog: {stored:,} readings stored, {expected:,} produced"
          + ("" if stored == expected else "  ← MISMATCH"))
    return 0 if stored == expected else 1


if __name__ == "__main__":
    sys.exit(main())
