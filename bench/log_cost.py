"""What the transparency log costs the collector: `.venv/bin/python bench/log_cost.py [--quick]`.

The collector's own ingest path (groups, signature checks, decoding, centre QC, catalog
commit; no broker) takes the same signed messages into a fresh SQLite catalog with the log
(a leaf per batch, docs/provenance.md) and without it, alternately, best of N each. Printed:
readings/s of both and their ratio, for live batches sent alone (one record of 7 readings
a batch: the log's worst case, a leaf per 7 readings) and for backlog bundles of 32. Also:
how long signing a tree head over the whole log takes once the collector has its frontier,
and from a cold start. Target (issue 18): the log costs at most 10 % of ingest.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
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


def ingest_rate(catalog_class, directory: Path, keys, payloads) -> float:
    path = directory / f"{catalog_class.__name__}-{time.monotonic_ns()}.db"
    catalog = catalog_class(path)
    for index, key in enumerate(keys):
        public = key.public_key()
        catalog.add_station(Station(f"0-20000-0-{10000 + index}", NETWORK, interval_seconds=60),
                            public_bytes(public), key_id(public))
    collector = Collector(catalog, "127.0.0.1", 1)  # never connects: acks stay queued
    for topic, payload in payloads:
        message = MQTTMessage(topic=topic.encode())
        message.payload = payload
        collector._on_message(None, None, message)
    started = time.perf_counter()
    while group := collector._take_group(timeout=0):
        collector.process(group)
    collector.flush()
    elapsed = time.perf_counter() - started
    readings = catalog.stats()["observations"]
    catalog.close()
    return readings / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stations", type=int, default=100)
    parser.add_argument("--minutes", type=int, default=192)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs each")
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
            best = {SQLiteCatalog: 0.0, CatalogWithoutLog: 0.0}
            for _ in range(args.repeat):  # alternate, so both see the same machine
                for catalog_class in best:
                    rate = ingest_rate(catalog_class, directory, keys, payloads)
                    best[catalog_class] = max(best[catalog_class], rate)
            with_log, without = best[SQLiteCatalog], best[CatalogWithoutLog]
            print(f"{label}: {args.stations * args.minutes:,} batches, "
                  f"{args.stations * args.minutes * len(ELEMENTS):,} readings")
            print(f"  without the log  {without:12,.0f} readings/s")
            print(f"  with the log     {with_log:12,.0f} readings/s   with / without = "
                  f"{with_log / without:.3f} (cost {100 * (1 - with_log / without):.1f} %)",
                  flush=True)
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
