"""Collector verification rate, with and without payload encryption:
`.venv/bin/python bench/verify_rate.py [--quick]`.

What a collector does to every message before the catalog sees it (open the seal if there
is one, check the Ed25519 signature, decode and validate each batch), for one-minute batches
of 7 readings sent alone and in backlog bundles of 32. Printed: verified batches/s, and the
sealed rate as a ratio of the plain one measured in the same run.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from obslink import wire
from obslink.keys import key_id, public_bytes
from obslink.readings import Reading
from obslink.server.verify import verify_message

STATION, ELEMENTS = "0-20000-0-10000", ("air_temperature", "relative_humidity",
                                        "air_pressure", "wind_speed", "wind_from_direction",
                                        "precipitation_amount", "soil_temperature")


def batch_bodies(count: int) -> list[bytes]:
    rng = random.Random(1)
    return [wire.encode_batch(wire.Batch(STATION, "e1", seq, seq * 60_000_000, [
        Reading(seq * 60_000_000, element, round(rng.uniform(0, 30), 2), "1", element)
        for element in ELEMENTS])) for seq in range(1, count + 1)]


def rate(payloads: list[bytes], batches: int, topic: str, keys, decryption_key) -> float:
    started = time.perf_counter()
    accepted = 0
    for payload in payloads:
        accepted += len(verify_message(topic, payload, 0, keys, decryption_key))
    elapsed = time.perf_counter() - started
    assert accepted == batches, (accepted, batches)
    return batches / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=8192)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs")
    parser.add_argument("--quick", action="store_true", help="1,024 batches, best of 2")
    args = parser.parse_args()
    if args.quick:
        args.batches, args.repeat = 1024, 2
    key, collector = Ed25519PrivateKey.generate(), X25519PrivateKey.generate()
    kid = key_id(key.public_key())
    keys = {kid: (public_bytes(key.public_key()), "active")}
    topic = wire.data_topic("bench", STATION)
    bodies = batch_bodies(args.batches)
    singles = [wire.sign(body, topic, key, kid) for body in bodies]
    bundles = [wire.sign_bundle(bodies[i:i + 32], topic, key, kid)
               for i in range(0, len(bodies), 32)]
    print(f"{args.batches:,} batches of {len(ELEMENTS)} readings, best of {args.repeat}")
    for label, payloads in (("alone", singles), ("in bundles of 32", bundles)):
        sealed = [wire.seal(payload, topic, collector.public_key()) for payload in payloads]
        plain_rate = max(rate(payloads, args.batches, topic, lambda s: keys, None)
                         for _ in range(args.repeat))
        sealed_rate = max(rate(sealed, args.batches, topic, lambda s: keys, collector)
                          for _ in range(args.repeat))
        print(f"  {label:<17} plain {plain_rate:9,.0f} batches/s   sealed {sealed_rate:9,.0f} "
              f"batches/s   sealed/plain {sealed_rate / plain_rate:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
