"""The collector commits a group on a second thread while it verifies the next one; an ack
must still leave only once its batches are committed (seen by another connection). Workers
sharing one catalog judge replays by the floors the catalog holds, not by what each saw."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from obslink import wire
from obslink.keys import key_id, public_bytes
from obslink.readings import Reading, now_us
from obslink.server.catalog import Station, open_catalog
from obslink.server.collector import Collector

T0 = 1_795_000_000_000_000


def signed_batch(key: Ed25519PrivateKey, seq: int, floor: int = 1) -> tuple[str, bytes, int]:
    topic = wire.data_topic("net", "PIPE1")
    body = wire.encode_batch(wire.Batch("PIPE1", "ep", seq, T0, [
        Reading(T0 + seq * 60_000_000, "air_temperature", 1.5, "degC", "T")], floor=floor))
    return topic, wire.sign(body, topic, key, key_id(key.public_key())), now_us()


def signed_gap(key: Ed25519PrivateKey, first: int, last: int) -> tuple[str, bytes, int]:
    topic = wire.gap_topic("net", "PIPE1")
    gap = wire.GapReport("PIPE1", "ep", 1, first, last, last - first + 1, last - first + 1,
                         None, None, "size-cap", now_us())
    return topic, wire.sign(wire.encode_gap(gap), topic, key, key_id(key.public_key())), \
        now_us()


def worker(location, acks: list) -> Collector:
    """A collector worker on its own connection to the catalog at ``location``; its acks
    are recorded in ``acks``."""
    collector = Collector(open_catalog(location), "127.0.0.1", 1)  # never connects
    collector._publish = lambda topic, payload: acks.append(wire.decode_ack(payload))
    return collector


def test_each_ack_leaves_after_its_batches_are_committed(catalog_location):
    key = Ed25519PrivateKey.generate()
    catalog = open_catalog(catalog_location)
    other = catalog.reader()
    catalog.add_station(Station("PIPE1", "net"), public_bytes(key.public_key()),
                        key_id(key.public_key()))
    collector = Collector(catalog, "127.0.0.1", 1)  # never connects: acks are only recorded
    acked_then_stored = []

    def publish(topic, payload):
        stored = {seq for (seq,) in other.conn.execute("SELECT seq FROM batches")}
        acked_then_stored.append((wire.decode_ack(payload).committed, stored))

    collector._publish = publish
    for first in range(1, 40, 3):  # groups of three batches, one after the other
        collector.process([signed_batch(key, seq) for seq in range(first, first + 3)])
    collector.flush()

    assert sorted(seq for acked, _ in acked_then_stored for seq in acked) == \
        list(range(1, 40))
    assert all(set(acked) <= stored for acked, stored in acked_then_stored)
    assert collector.committed == 39 and collector._pending is None


def test_workers_sharing_a_catalog_judge_replays_by_the_floors_the_catalog_holds(
        catalog_location):
    """Worker B has seen the station's outbox before worker A raised its floor and stored
    an eviction report: B must still refuse a copy of a stored batch below the floor (not
    ack it as a redelivery), a batch below the floor never stored, and an evicted batch."""
    key = Ed25519PrivateKey.generate()
    catalog = open_catalog(catalog_location)
    catalog.add_station(Station("PIPE1", "net"), public_bytes(key.public_key()),
                        key_id(key.public_key()))
    acks_a, acks_b = [], []
    a, b = worker(catalog_location, acks_a), worker(catalog_location, acks_b)
    b.process([signed_batch(key, 1, floor=0)])
    b.flush()
    a.process([signed_batch(key, 5, floor=1), signed_batch(key, 6, floor=6)])
    a.flush()
    a.process([signed_gap(key, 7, 8)])
    a.flush()
    for copy in (signed_batch(key, 5, floor=1), signed_batch(key, 4, floor=1),
                 signed_batch(key, 8, floor=6)):
        b.process([copy])
        b.flush()
    b.process([signed_batch(key, 6, floor=6)])  # at the floor: a redelivery, acked
    b.flush()

    assert [ack.committed for ack in acks_b] == [[1], [6]]
    assert all(not ack.refused for ack in acks_b)  # a replay gets no answer
    rows = catalog.conn.execute("SELECT reason, seq, detail FROM refusals ORDER BY id"
                                ).fetchall()
    assert [(reason, seq) for reason, seq, _ in rows] == \
        [("replay", 5), ("replay", 4), ("replay", 8)]
    assert "stored at" in rows[0][2] and "never stored" in rows[1][2] and \
        "evicted" in rows[2][2]
    assert sorted(seq for (seq,) in catalog.conn.execute("SELECT seq FROM batches")) == \
        [1, 5, 6]
    assert b.window.late_copies == 1


def test_a_collector_goes_on_after_postgresql_drops_its_connections(postgres):
    """A server restart or failover drops the catalog's connections: the group in hand fails
    as the database's state (not acknowledged: its stations send it again), and the next
    group commits on a new connection."""
    import psycopg

    key = Ed25519PrivateKey.generate()
    location = postgres.schema_url("dropped")
    with psycopg.connect(postgres.url, autocommit=True) as admin:
        acks: list = []
        collector = worker(location, acks)
        collector.catalog.add_station(Station("PIPE1", "net"), public_bytes(key.public_key()),
                                      key_id(key.public_key()))
        collector.process([signed_batch(key, 1)])
        collector.flush()
        for catalog in (collector.catalog, collector._lookups):
            admin.execute("SELECT pg_terminate_backend(%s)",
                          (catalog.conn.raw.info.backend_pid,))
        # each connection fails the group that finds it dropped (the keys' lookups, then
        # the commit): not acknowledged, so the stations send it again
        for attempt in range(3):
            collector.process([signed_batch(key, 2), signed_batch(key, 3)])
            collector.flush()
            if len(acks) > 1:
                break
    assert attempt == 2 and [ack.committed for ack in acks] == [[1], [2, 3]]
    assert sorted(seq for (seq,) in collector.catalog.conn.execute("SELECT seq FROM batches")
                  ) == [1, 2, 3]
