"""What the transparency log costs the collector: `.venv/bin/python bench/log_cost.py [--quick]`.

The collector's own ingest path (groups, signature checks, decoding, centre QC, catalog
commit; no broker) takes the same signed messages into a fresh SQLite catalog with the log
(a leaf per batch, docs/provenance.md) and without it. Printed: readings/s of the
pipeline with and without it (medians of N runs each), and the cost measured in pairs (the
same group to both, in turn, so that the machine's drift falls on both alike), for live
batches sent alone (one record of 7 readings a batch: the log's worst case, a leaf per 7
readings) and for backlog bundles of 32. Also:
how long signing a tree head over the whole log takes once the collector has its frontier,
and from a cold start. Target (issue 18): the log costs at most 10 % of ingest.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from itertools import count
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.client import MQTTMessage

from obslink import wire
from obslink.keys import key_id, public_bytes
from obslink.readings import Reading
from obslink.server.catalog import Station, open_catalog
from obslink.server.catalog.sqlite import SQLiteCatalog
from obslink.server.collector import Collector

NETWORK = "bench"
ELEMENTS = ("air_temperature", "relative_humidity", "air_pressure", "wind_speed",
            "wind_from_direction", "precipitation_amount", "soil_temperature")


class CatalogWithoutLog(SQLiteCatalog):
    transparency_log = False


def messages(stations: int, minutes: int, bundle: int, keys) -> list[tuple[str, bytes]]:
    """Signed messages as a broker would deliver them: a message from each station in turn."""
    rng = random.Random(1)
    per_station = []
    for index, key in enumerate(keys[:stations]):
        station = f"0-20000-0-{10000 + index}"
        topic = wire.data_topic(NETWORK, station)
        bodies = [wire.encode_batch(wire.Batch(station, "e1", minute + 1, minute * 60_000_000, [
            Reading(minute * 60_000_000, element, round(rng.uniform(0, 30), 2), "1", element)
            for element in ELEMENTS])) for minute in range(minutes)]
        kid = key_id(key.public_key())
        per_station.append([(topic, wire.sign(body, topic, key, kid)) for body in bodies]
                           if bundle == 1 else
                           [(topic, wire.sign_bundle(bodies[i:i + bundle], topic, key, kid))
                            for i in range(0, len(bodies), bundle)])
    return [message for turn in zip(*per_station) for message in turn]


def collector_for(catalog_class, directory: Path, keys, payloads) -> Collector:
    """A collector on a fresh catalog of ``catalog_class``, ``payloads`` queued."""
    catalog = catalog_class(directory / f"{catalog_class.__name__}-{time.monotonic_ns()}.db")
    for index, key in enumerate(keys):
        public = key.public_key()
        catalog.add_station(Station(f"0-20000-0-{10000 + index}", NETWORK, interval_seconds=60),
                            public_bytes(public), key_id(public))
    collector = Collector(catalog, "127.0.0.1", 1)  # never connects: acks stay queued
    for topic, payload in payloads:
        message = MQTTMessage(topic=topic.encode())
        message.payload = payload
        collector._on_message(None, None, message)
    return collector


def ingest_rate(catalog_class, directory: Path, keys, payloads) -> float:
    """Readings/s of the collector's own pipeline (commits overlapping verification)."""
    collector = collector_for(catalog_class, directory, keys, payloads)
    started = time.perf_counter()
    while group := collector._take_group(timeout=0):
        collector.process(group)
    collector.flush()
    elapsed = time.perf_counter() - started
    readings = collector.catalog.stats()["observations"]
    collector.catalog.close()
    return readings / elapsed


def paired_seconds(directory: Path, keys, payloads,
                   classes=(SQLiteCatalog, CatalogWithoutLog)) -> tuple[float, float]:
    """Seconds the same groups take on each of two catalog classes (with the log and
    without it), a group to each in turn (each verified and committed before the next):
    the machine's speed, which drifts by 2-3x between minutes here, is then the same for
    both sides of every pair."""
    sides = [collector_for(cls, directory, keys, payloads) for cls in classes]
    spent = [0.0, 0.0]
    for turn in count():
        groups = [side._take_group(timeout=0) for side in sides]
        if not any(groups):
            break
        for index in (0, 1) if turn % 2 else (1, 0):
            started = time.perf_counter()
            sides[index].process(groups[index])
            sides[index].flush()
            spent[index] += time.perf_counter() - started
    for side in sides:
        side.catalog.close()
    return spent[0], spent[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stations", type=int, default=100)
    parser.add_argument("--minutes", type=int, default=192)
    parser.add_argument("--repeat", type=int, default=5, help="pipeline runs of each")
    parser.add_argument("--quick", action="store_true", help="fewer minutes, 2 runs each")
    args = parser.parse_args()
    if args.quick:
        args.minutes, args.repeat = 64, 2
    keys = [Ed25519PrivateKey.generate() for _ in range(args.stations)]
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        for label, bundle in (("live, a batch of 7 readings a message", 1),
                              ("backlog, bundles of 32 batches", 32)):
            payloads = messages(args.stations, args.minutes, bundle, keys)
            rates: dict = {CatalogWithoutLog: [], SQLiteCatalog: []}
            for round_number in range(args.repeat):  # alternating, which goes first too
                for cls in list(rates)[::1 if round_number % 2 else -1]:
                    rates[cls].append(ingest_rate(cls, directory, keys, payloads))
            rates = {cls: statistics.median(found) for cls, found in rates.items()}
            with_log, without = paired_seconds(directory, keys, payloads)
            readings = args.stations * args.minutes * len(ELEMENTS)
            print(f"{label}: {args.stations * args.minutes:,} batches, {readings:,} readings")
            print(f"  pipeline, without the log  {rates[CatalogWithoutLog]:10,.0f} readings/s, "
                  f"with it {rates[SQLiteCatalog]:10,.0f} (medians of {args.repeat} runs)")
            print(f"  paired groups: {with_log:.2f} s with the log, {without:.2f} s without: "
                  f"with / without = {with_log / without:.3f} (cost "
                  f"{100 * (with_log / without - 1):.1f} %)", flush=True)
        catalog = open_catalog(next(directory.glob("SQLiteCatalog-*.db")))
        collector_key = Ed25519PrivateKey.generate()
        started = time.perf_counter()
        head = catalog.sign_tree_head(collector_key)
        cold = time.perf_counter() - started
        started = time.perf_counter()
        catalog.sign_tree_head(collector_key)
        warm = time.perf_counter() - started
        catalog.close()
        print(f"signing a tree head over {head['size']:,} leaves: {cold * 1000:.1f} ms from "
              f"a cold start, {warm * 1000:.2f} ms with the frontier kept")
    return 0


if __name__ == "__main__":
    sys.exit(main())
