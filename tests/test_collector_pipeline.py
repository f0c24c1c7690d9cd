"""The collector commits a group on a second thread while it verifies the next one; an ack
must still leave only once its batches are committed (seen by another connection)."""

from __future__ import annotations

import sqlite3

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from obslink import wire
from obslink.keys import key_id, public_bytes
from obslink.readings import Reading, now_us
from obslink.server.catalog import Station, open_catalog
from obslink.server.collector import Collector

T0 = 1_795_000_000_000_000


def signed_batch(key: Ed25519PrivateKey, seq: int) -> tuple[str, bytes, int]:
    topic = wire.data_topic("net", "PIPE1")
    body = wire.encode_batch(wire.Batch("PIPE1", "ep", seq, T0, [
        Reading(T0 + seq * 60_000_000, "air_temperature", 1.5, "degC", "T")], floor=1))
    return topic, wire.sign(body, topic, key, key_id(key.public_key())), now_us()


def test_each_ack_leaves_after_its_batches_are_committed(tmp_path):
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "catalog.db"
    catalog = open_catalog(path)
    catalog.add_station(Station("PIPE1", "net"), public_bytes(key.public_key()),
                        key_id(key.public_key()))
    collector = Collector(catalog, "127.0.0.1", 1)  # never connects: acks are only recorded
    acked_then_stored = []

    def publish(topic, payload):
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as other:
            stored = {seq for (seq,) in other.execute("SELECT seq FROM batches")}
        acked_then_stored.append((wire.decode_ack(payload).committed, stored))

    collector._publish = publish
    for first in range(1, 40, 3):  # groups of three batches, one after the other
        collector.process([signed_batch(key, seq) for seq in range(first, first + 3)])
    collector.flush()

    assert sorted(seq for acked, _ in acked_then_stored for seq in acked) == \
        list(range(1, 40))
    assert all(set(acked) <= stored for acked, stored in acked_then_stored)
    assert collector.committed == 39 and collector._pending is None
