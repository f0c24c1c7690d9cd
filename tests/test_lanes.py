"""Live data first on the wire: the agent marks its lanes, the collector takes live first."""

from __future__ import annotations

import dataclasses
import hashlib
import threading

import pytest

from obslink import wire
from obslink.agent.config import load_config
from obslink.agent.outbox import Outbox
from obslink.agent.uplink import Uplink
from obslink.keys import key_id, load_private_key, public_bytes, write_keypair
from obslink.plugins.formats import Decoded
from obslink.plugins.registry import load_registry
from obslink.plugins.sources import ChunkOrigin, SourcePosition
from obslink.plugins.toa5 import TOA5Adapter
from obslink.readings import Reading, now_us
from obslink.server.catalog import Station, open_catalog
from obslink.server.collector import Collector
from tests.conftest import listening, wait_until

HOUR_US = 3600 * 1_000_000


def commit_batch(outbox: Outbox, observed_at: int) -> None:
    readings = [Reading(observed_at, "air_temperature", 1.5, "degC", "T")]
    outbox.ingest(ChunkOrigin("logger", "a.dat", 0, 10, b""), Decoded(readings, [], 10),
                  SourcePosition(10, "1:2", {}), TOA5Adapter(), 1000)


def agent_config(tmp_path, broker, station: str = "LANES1"):
    write_keypair(tmp_path / "s.key", tmp_path / "s.pub")
    (tmp_path / "logger").mkdir()
    path = tmp_path / "agent.toml"
    path.write_text(f"""
[station]
id = "{station}"
network = "lanes"
private_key = "s.key"

[outbox]
path = "outbox.db"

[uplink]
broker = "{broker.url}"

[sources.logger]
type = "directory"
path = "logger"
format = "toa5"
""")
    return load_config(path, load_registry())


def drain_to_a_collector(tmp_path, broker, config, outbox: Outbox, group: str = "lanes-test"):
    """Enrol the station in a new catalog, run a collector (of subscription ``group``) and
    the station's uplink until the outbox is empty; (catalog, collector, uplink) after."""
    key = load_private_key(config.private_key)
    catalog = open_catalog(tmp_path / "catalog.db")
    catalog.add_station(Station(config.station, config.network),
                        public_bytes(key.public_key()), key_id(key.public_key()))
    collector, stop, thread = run_collector(tmp_path / "catalog.db", broker, group)
    uplink = Uplink(config, outbox, key)
    uplink.start()
    try:
        wait_until(lambda: outbox.stats().batches == 0, message="every batch acked")
    finally:
        uplink.stop()
        stop.set()
        thread.join(10)
    return catalog, collector, uplink


def test_live_batches_are_marked_and_the_collector_takes_them_first(tmp_path, broker):
    # a window that holds the whole backlog: nothing here acks, so nothing else would go out
    config = dataclasses.replace(agent_config(tmp_path, broker), backlog_in_flight=3)
    outbox = Outbox(config.outbox_path, config.station)
    for hours_ago in (30, 29, 28):  # backlog: an outage's worth
        commit_batch(outbox, now_us() - hours_ago * HOUR_US)
    commit_batch(outbox, now_us())  # the minute that just happened

    with listening(broker.port, wire.data_topic("lanes", "LANES1")) as received:
        uplink = Uplink(config, outbox, load_private_key(config.private_key))
        uplink.start()
        try:
            wait_until(lambda: len(received) == 4, message="four batches published")
        finally:
            uplink.stop()

    lanes = [dict(m.properties.UserProperty)[wire.LANE_PROPERTY] for m in received]
    assert lanes == ["live", "backlog", "backlog", "backlog"]  # live went out first

    # The collector, handed the backlog first and the live batch last, commits live first.
    collector = Collector(open_catalog(tmp_path / "catalog.db"), "127.0.0.1", broker.port)
    for message in received[1:] + received[:1]:
        collector._on_message(None, None, message)
    group = collector._take_group(timeout=1)
    assert [payload for _topic, payload, _at in group] == \
        [received[0].payload] + [m.payload for m in received[1:]]
    assert collector._take_group(timeout=0.01) == []


def run_collector(catalog_path, broker, group: str = "lanes-test"
                  ) -> tuple[Collector, threading.Event, threading.Thread]:
    collector = Collector(open_catalog(catalog_path), "127.0.0.1", broker.port, group=group)
    stop = threading.Event()
    thread = threading.Thread(target=collector.run, args=(stop,), daemon=True)
    thread.start()
    assert collector.connected.wait(10)
    return collector, stop, thread


@pytest.mark.parametrize("protocol", [1, 2])
def test_a_backlog_drains_in_bundles_and_each_batch_keeps_its_provenance(tmp_path, broker,
                                                                         protocol):
    config = dataclasses.replace(agent_config(tmp_path, broker), protocol=protocol)
    key = load_private_key(config.private_key)
    outbox = Outbox(config.outbox_path, config.station)
    for minute in range(100):
        commit_batch(outbox, now_us() - 30 * HOUR_US + minute * 60_000_000)
    catalog, collector, uplink = drain_to_a_collector(tmp_path, broker, config, outbox)
    assert uplink.bundle_limit == config.backlog_bundle == 32  # the collector announced them
    rows = catalog.conn.execute(
        "SELECT b.seq, b.body, b.signature, b.bundle_id, u.digests, u.topic, u.signature, "
        "b.topic, c.body FROM batches b LEFT JOIN bundles u ON u.id = b.bundle_id "
        "LEFT JOIN batch_contexts c ON c.station = b.station AND c.ref = b.context_ref "
        "ORDER BY b.seq").fetchall()
    assert [row[0] for row in rows] == list(range(1, 101))  # each once
    assert catalog.conn.execute("SELECT count(*) FROM observations").fetchone()[0] == 100
    bundled = [row for row in rows if row[3] is not None]
    # before the first ack the window's two batches went alone; the rest went in bundles
    assert 2 <= 100 - len(bundled) <= 2 + 2 * 32 and bundled
    public = key.public_key()
    v2 = 0
    for seq, body, signature, _bundle, digests, topic, bundle_signature, batch_topic, context \
            in rows:
        if wire.is_v2_body(body):  # each batch's context digest and body digest signed
            v2 += 1
            assert batch_topic == wire.data_topic_v2("lanes", "LANES1")
            pair = hashlib.sha256(context).digest() + hashlib.sha256(body).digest()
            if digests is None:
                public.verify(signature, wire.signed_message_v2(batch_topic, pair))
                continue
            assert pair in {digests[i:i + 64] for i in range(0, len(digests), 64)}
            public.verify(bundle_signature, wire.signed_message_v2(topic, digests))
            continue
        if digests is None:  # signed alone
            public.verify(signature, wire.signed_message(wire.data_topic("lanes", "LANES1"),
                                                         body))
            continue
        assert signature == bundle_signature
        assert hashlib.sha256(body).digest() in {digests[i:i + 32]
                                                 for i in range(0, len(digests), 32)}
        public.verify(bundle_signature, wire.signed_bundle(topic, digests))
    # v2 once the first ack announced it; v1 throughout where the agent is held to it
    assert (v2 >= 90) if protocol == 2 else v2 == 0
    assert collector.committed == 100 and collector.refused == 0


def test_an_unacked_bundle_is_published_again_as_it_went(tmp_path, broker):
    config = dataclasses.replace(agent_config(tmp_path, broker), ack_timeout=0.5)
    outbox = Outbox(config.outbox_path, config.station)
    for minute in range(5):
        commit_batch(outbox, now_us() - 30 * HOUR_US + minute * 60_000_000)
    with listening(broker.port, wire.data_topic("lanes", "LANES1")) as received:
        uplink = Uplink(config, outbox, load_private_key(config.private_key))
        # an ack from a collector that takes bundles (naming nothing of this outbox)
        uplink.take_ack(wire.encode_ack(wire.Ack(outbox.epoch, bundles=64)))
        uplink.start()
        try:
            wait_until(lambda: len(received) >= 2, message="a bundle published twice")
        finally:
            uplink.stop()
    first, again = (wire.open_envelope(message.payload) for message in received[:2])
    assert first.is_bundle and len(first.bodies) == 5 and again.bodies == first.bodies
    assert [wire.decode_batch(b).seq for b in first.bodies] == [1, 2, 3, 4, 5]


def test_without_the_collector_announcing_bundles_every_batch_goes_alone(tmp_path, broker):
    config = agent_config(tmp_path, broker)
    uplink = Uplink(config, Outbox(config.outbox_path, config.station),
                    load_private_key(config.private_key))
    uplink.take_ack(wire.encode_ack(wire.Ack("another-epoch", now=now_us())))
    uplink.step()
    assert uplink.bundle_limit == 1


def test_a_batch_dated_in_the_future_never_jumps_the_queue(tmp_path, broker):
    """A logger clock a year ahead: its batch is newest by date, but it is backlog."""
    config = dataclasses.replace(agent_config(tmp_path, broker), backlog_in_flight=2)
    outbox = Outbox(config.outbox_path, config.station)
    commit_batch(outbox, now_us() + 365 * 24 * HOUR_US)  # seq 1: from the future
    commit_batch(outbox, now_us())  # seq 2: the minute that just happened
    assert outbox.lanes(*Uplink(config, outbox, load_private_key(
        config.private_key)).live_window())["live"]["batches"] == 1
    with listening(broker.port, wire.data_topic("lanes", "LANES1")) as received:
        uplink = Uplink(config, outbox, load_private_key(config.private_key))
        uplink.start()
        try:
            wait_until(lambda: len(received) == 2, message="both batches published")
        finally:
            uplink.stop()
    sent = [(wire.decode_batch(wire.open_envelope(m.payload).body).seq,
             dict(m.properties.UserProperty)[wire.LANE_PROPERTY]) for m in received]
    assert sent == [(2, "live"), (1, "backlog")]


def test_a_group_of_v2_messages_holds_about_the_readings_of_a_v1_group(tmp_path):
    """A v2 message's bytes count V2_GROUP_WEIGHT times towards a group's budget, so that a
    live minute waits for no more readings on v2 than on v1 (bench/backlog_drain.py)."""
    from obslink.server import collector as collector_module

    catalog = open_catalog(tmp_path / "catalog.db")
    collector = Collector(catalog, "127.0.0.1", 1)
    piece = bytes(1024)
    for _ in range(20):
        collector._arrive(wire.data_topic("lanes", "LANES1"), piece * 16, False, 0)
    assert len(collector._take_group(timeout=1)) == 4  # 16 KiB each: 64 KiB
    while collector._take_group(timeout=0.01):
        pass
    for _ in range(20):
        collector._arrive(wire.data_topic_v2("lanes", "LANES1"), piece, False, 0)
    group = collector._take_group(timeout=1)
    assert len(group) == catalog.group_bytes // collector_module.V2_GROUP_WEIGHT \
        // len(piece) == 4
