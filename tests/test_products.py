"""Products' parts without a broker: the wire messages, the agent's product outbox, the
collector's product store and receiver (real signatures, real files)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from obslink import wire
from obslink.agent.product_outbox import ProductOutbox
from obslink.demo.radar_products import RadarScan, write_cinrad
from obslink.errors import WireError
from obslink.keys import key_id, public_bytes
from obslink.plugins.cinrad import CinradBaseData
from obslink.readings import now_us
from obslink.server.catalog import Station, open_catalog
from obslink.server.product_receiver import ProductReceiver
from obslink.server.product_store import ProductStore

CHUNK = 4096


def product_file(tmp_path: Path, seed: int = 0) -> Path:
    return write_cinrad(tmp_path / f"volume-{seed}.bin.bz2",
                        RadarScan(elevations=(0.5, 1.5), radials=60, gates=300, seed=seed))


def outbox_with(tmp_path: Path, max_bytes: int = 10**9) -> ProductOutbox:
    return ProductOutbox(tmp_path / "products", "RADAR-1", "e1", max_bytes, CHUNK)


def admitted(outbox: ProductOutbox, path: Path) -> int:
    with open(path, "rb") as stream:
        metadata = CinradBaseData().read_metadata(stream, path.name)
    return outbox.admit("radar", path, "identity", metadata, "cinrad", "1")


def test_wire_messages_round_trip(tmp_path):
    outbox = outbox_with(tmp_path)
    [pending] = outbox.pending() if admitted(outbox, product_file(tmp_path)) else []
    manifest = pending.manifest
    assert wire.decode_manifest(wire.encode_manifest(manifest)) == manifest
    chunk = wire.Chunk("RADAR-1", "e1", 1, 0, manifest.chunk_sha256[0],
                       outbox.read_chunk(pending, 0))
    assert wire.decode_chunk(wire.encode_chunk(chunk), chunk.data) == chunk
    with pytest.raises(WireError, match="changed on the way"):
        wire.decode_chunk(wire.encode_chunk(chunk), b"x" + chunk.data[1:])
    with pytest.raises(WireError, match="no bytes of data"):
        wire.decode_chunk(wire.encode_chunk(chunk), None)
    ack = wire.ProductAck("e1", 1, [(0, 3), (5, 5)], bad=[(4, "why")])
    assert wire.decode_product_ack(wire.encode_product_ack(ack)) == ack
    gap = wire.ProductGap("RADAR-1", "e1", 7, "big.bin", 10, None, "product-too-large", "d", 1)
    assert wire.decode_product_gap(wire.encode_product_gap(gap)) == gap
    assert wire.spans([5, 0, 1, 2, 7, 8]) == [(0, 2), (5, 5), (7, 8)]


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=300))
def test_product_messages_of_any_bytes_decode_or_say_why(data):
    for decode in (wire.decode_manifest, wire.decode_chunk_header, wire.decode_product_gap,
                   wire.decode_product_ack, wire.product_kind,
                   lambda body: wire.decode_chunk(body, body)):
        try:
            decode(data)
        except WireError:
            pass


def test_the_outbox_copies_a_product_and_lets_it_go_once_registered(tmp_path):
    outbox = outbox_with(tmp_path)
    path = product_file(tmp_path)
    number = admitted(outbox, path)
    assert outbox.taken("radar", path.name, "identity")
    [pending] = outbox.pending()
    data = b"".join(outbox.read_chunk(pending, i) for i in range(pending.manifest.chunks))
    assert data == path.read_bytes()
    assert hashlib.sha256(data).digest() == pending.manifest.sha256
    assert not outbox.record_ack(wire.ProductAck("e1", number, [(0, 1)]))
    assert outbox.pending()[0].missing() == list(range(2, pending.manifest.chunks))
    # the collector lost what it had: everything again, manifest first
    outbox.record_ack(wire.ProductAck("e1", number, [], need_manifest=True))
    assert outbox.pending()[0].missing() == list(range(pending.manifest.chunks))
    assert not outbox.pending()[0].manifest_sent
    assert outbox.record_ack(wire.ProductAck("e1", number, complete=True))
    assert outbox.pending() == [] and not outbox.path_of(number).exists()


def test_a_product_beyond_the_room_is_refused_and_older_ones_make_way(tmp_path):
    path = product_file(tmp_path)
    small = outbox_with(tmp_path / "small", max_bytes=path.stat().st_size - 1)
    assert admitted(small, path) is None
    [gap] = small.unreported_gaps()
    assert gap["reason"] == "product-too-large" and gap["size"] == path.stat().st_size
    roomy = outbox_with(tmp_path / "roomy", max_bytes=int(path.stat().st_size * 1.5))
    first = admitted(roomy, path)
    second = admitted(roomy, product_file(tmp_path, seed=1))
    assert [p.id for p in roomy.pending()] == [second]
    [gap] = roomy.unreported_gaps()
    assert gap["reason"] == "product-evicted" and not roomy.path_of(first).exists()


def test_a_kill_during_the_copy_leaves_no_stray_file(tmp_path):
    outbox = outbox_with(tmp_path)
    (outbox.files / "99").write_bytes(b"half a product")
    outbox.close()
    assert not (outbox_with(tmp_path).files / "99").exists()


class Station1:
    """A station with a key, enrolled in a catalog, and a receiver for its products."""

    def __init__(self, tmp_path: Path, location) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.kid = key_id(self.key.public_key())
        catalog = open_catalog(location)
        catalog.add_station(Station("RADAR-1", "net"), public_bytes(self.key.public_key()),
                            self.kid)
        catalog.close()
        self.acks: list[wire.ProductAck] = []
        self.store = ProductStore(tmp_path / "store")
        self.receiver = ProductReceiver(str(location), self.store,
                                        lambda topic, payload: self.acks.append(
                                            wire.decode_product_ack(payload)))
        self.receiver.catalog = open_catalog(location)
        self.topic = wire.product_topic("net", "RADAR-1")

    def send(self, body: bytes, data: bytes | None = None) -> wire.ProductAck:
        self.receiver.handle(self.topic, wire.sign(body, self.topic, self.key, self.kid, data),
                             now_us())
        return self.acks[-1]

    def send_chunk(self, manifest: wire.Manifest, number: int, index: int, data: bytes,
                   header_sha: bytes | None = None) -> wire.ProductAck:
        """A chunk as the agent sends it: its signed header, the data beside it."""
        return self.send(wire.encode_chunk(wire.Chunk(
            "RADAR-1", "e1", number, index, header_sha or manifest.chunk_sha256[index],
            data)), data)


def test_the_receiver_stores_each_chunk_once_refuses_a_wrong_one_and_registers(
        tmp_path, catalog_location):
    station = Station1(tmp_path, catalog_location)
    outbox = outbox_with(tmp_path)
    number = admitted(outbox, product_file(tmp_path))
    [pending] = outbox.pending()
    manifest = pending.manifest
    def chunk(index, data=None, header_sha=None):
        return station.send_chunk(manifest, number, index, outbox.read_chunk(pending, index)
                                  if data is None else data, header_sha)

    assert chunk(0).need_manifest  # a chunk before its manifest
    assert station.send(pending.body).have == []
    assert chunk(0).have == [(0, 0)]
    assert chunk(0).have == [(0, 0)]  # again: acknowledged, not written
    assert (station.receiver.chunks_stored, station.receiver.chunks_again) == (1, 1)
    zeros = b"\0" * manifest.chunk_size(1)
    # signed with the right digest, other bytes beside it (changed on the way)
    changed = chunk(1, zeros)
    assert changed.bad and changed.bad[0][0] == 1 and "changed on the way" in changed.bad[0][1]
    # signed with the digest of those other bytes: not the one the manifest lists
    wrong = chunk(1, zeros, hashlib.sha256(zeros).digest())
    assert wrong.bad and "signed manifest" in wrong.bad[0][1]
    for index in range(1, manifest.chunks - 1):
        assert not chunk(index).complete
    done = chunk(manifest.chunks - 1)
    assert done.complete and done.record == f"obslink:RADAR-1/e1/p{number}"
    stored = station.store.path_of(manifest.sha256.hex())
    assert stored.read_bytes() == outbox.path_of(number).read_bytes()
    record = station.receiver.catalog.product(done.record)
    assert record["metadata"]["site"] == "Z9010" and record["size"] == manifest.size
    assert chunk(0).complete  # late copies: the product is registered
    assert {d["product"] for d in station.receiver.catalog.datasets("RADAR-1")} == \
        {"radar", "surface"}


def test_chunks_that_arrive_together_are_written_once_and_acknowledged_once(
        tmp_path, catalog_location):
    """The receiver takes what waits in its queue as a group: each chunk written once (a
    copy of one in the same group too), the product's files synced once, one answer per
    product after that, and the product registered when the group completes it."""
    station = Station1(tmp_path, catalog_location)
    outbox = outbox_with(tmp_path)
    number = admitted(outbox, product_file(tmp_path))
    [pending] = outbox.pending()
    manifest = pending.manifest
    assert manifest.chunks >= 4

    def signed_chunk(index):
        data = outbox.read_chunk(pending, index)
        body = wire.encode_chunk(wire.Chunk("RADAR-1", "e1", number, index,
                                            manifest.chunk_sha256[index], data))
        return (station.topic, wire.sign(body, station.topic, station.key, station.kid, data),
                now_us())

    manifest_message = (station.topic, wire.sign(pending.body, station.topic, station.key,
                                                 station.kid), now_us())
    station.receiver.handle_group([manifest_message, signed_chunk(0), signed_chunk(1),
                                   signed_chunk(0)])
    assert [ack.have for ack in station.acks] == [[], [(0, 1)]]  # the manifest's, the group's
    assert (station.receiver.chunks_stored, station.receiver.chunks_again) == (2, 1)
    station.receiver.handle_group([signed_chunk(i) for i in range(2, manifest.chunks)])
    done = station.acks[-1]
    assert len(station.acks) == 3 and done.complete
    assert station.store.path_of(manifest.sha256.hex()).read_bytes() == \
        outbox.path_of(number).read_bytes()


def test_a_product_that_fails_to_read_while_copied_leaves_no_copy(tmp_path):
    """The outbox copies a product while its format reads it: a format error, or a file
    that changed while read, leaves nothing behind and takes no number."""
    from obslink.plugins.products import ProductFormatError

    outbox = outbox_with(tmp_path)
    path = product_file(tmp_path)

    def broken():
        raise ProductFormatError("truncated: for the test", 0)
    with pytest.raises(ProductFormatError):
        outbox.take_in("radar", path, "identity", broken, "cinrad", "1")
    with open(path, "rb") as stream:
        metadata = CinradBaseData().read_metadata(stream, path.name)
    assert outbox.take_in("radar", path, "identity", lambda: metadata, "cinrad", "1",
                          unchanged=lambda: False) is None
    with pytest.raises(FileNotFoundError):  # gone before the copy
        outbox.take_in("radar", tmp_path / "gone.bin", "identity", lambda: metadata,
                       "cinrad", "1")
    assert list(outbox.files.iterdir()) == [] and outbox.pending() == []
    assert admitted(outbox, path) == 1


def test_a_product_from_an_unknown_key_is_refused_and_recorded(tmp_path, catalog_location):
    station = Station1(tmp_path, catalog_location)
    station.key = Ed25519PrivateKey.generate()
    station.kid = key_id(station.key.public_key())
    station.receiver.handle(station.topic, wire.sign(b"x", station.topic, station.key,
                                                     station.kid), 1)
    assert station.acks == []
    [(reason,)] = station.receiver.catalog.conn.execute(
        "SELECT reason FROM refusals").fetchall()
    assert reason == "unknown-key"


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_the_store_checks_the_whole_product_before_keeping_it(tmp_path, damage):
    store = ProductStore(tmp_path / "store")
    outbox = outbox_with(tmp_path)
    admitted(outbox, product_file(tmp_path))
    [pending] = outbox.pending()
    manifest = pending.manifest
    store.stage(manifest, "t", "k", b"s", pending.body, 1)
    for index in range(manifest.chunks):
        data = outbox.read_chunk(pending, index)
        if index == 0:
            data = data[:-1] + bytes([data[-1] ^ 1]) if damage == "flip" else data
        store.write_chunks([(manifest, index, data)])
    if damage == "truncate":
        part = next((store.root / "incoming").rglob("*.part"))
        with open(part, "r+b") as out:
            out.truncate(manifest.size - 1)
    with pytest.raises(ValueError, match="SHA-256"):
        store.finish(manifest)
    assert store.staged("RADAR-1", "e1", pending.id) is None
    assert not store.path_of(manifest.sha256.hex()).exists()


def test_workers_sharing_a_store_stage_and_finish_a_product_once(tmp_path):
    """Collector workers share the store and take a product's messages in turns: staging at
    the same moment, or after another worker's chunks are written, keeps them; a product
    another worker finished is finished here too."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    outbox = outbox_with(tmp_path)
    admitted(outbox, product_file(tmp_path))
    [pending] = outbox.pending()
    manifest = pending.manifest
    workers = [ProductStore(tmp_path / "store") for _ in range(8)]
    start = Barrier(len(workers))

    def stage(store: ProductStore) -> None:
        start.wait()
        store.stage(manifest, "t", "k", b"s", pending.body, 1)

    with ThreadPoolExecutor(len(workers)) as pool:
        list(pool.map(stage, workers))  # raises what any of them raised
    first, second = workers[:2]
    first.write_chunks([(manifest, 0, outbox.read_chunk(pending, 0))])
    # a worker whose stage began before the manifest was there: what was written stays
    (first.root / "incoming" / "RADAR-1" / f"e1-{pending.id}.manifest").unlink()
    second.stage(manifest, "t", "k", b"s", pending.body, 1)
    assert second.have(manifest)[0] == 1
    second.write_chunks([(manifest, index, outbox.read_chunk(pending, index))
                         for index in range(1, manifest.chunks)])
    final = first.finish(manifest)
    assert second.finish(manifest) == final  # the bytes moved on: finished all the same
    assert final.read_bytes() == (tmp_path / "volume-0.bin.bz2").read_bytes()
    first.discard(manifest)  # as each receiver does once it is registered
    second.discard(manifest)
    assert not [path.name for path in (first.root / "incoming").rglob("*") if path.is_file()]
    # what a worker killed while writing a staging file leaves: removed once stale
    left, writing = (first.root / "incoming" / "RADAR-1" / f"e1-9.have.{n}.tmp"
                     for n in ("1-dead", "2-busy"))
    left.write_bytes(b"\0"), writing.write_bytes(b"\0")
    os.utime(left, (0, 0))
    assert first.remove_stale_temporaries() == 1
    assert writing.exists() and not left.exists()


def registered_product(tmp_path: Path, catalog_location) -> tuple[Station1, str]:
    station = Station1(tmp_path, catalog_location)
    outbox = outbox_with(tmp_path)
    number = admitted(outbox, product_file(tmp_path))
    [pending] = outbox.pending()
    station.send(pending.body)
    for index in range(pending.manifest.chunks):
        ack = station.send_chunk(pending.manifest, number, index,
                                 outbox.read_chunk(pending, index))
    assert ack.complete
    return station, ack.record


def test_a_product_is_a_leaf_of_the_log_with_its_provenance_and_prov_json(
        tmp_path, catalog_location):
    from prov.model import ProvDocument

    from obslink.server.catalog.prov_json import to_prov_json
    from obslink.server.catalog.provenance import resolve

    station, record = registered_product(tmp_path, catalog_location)
    catalog = station.receiver.catalog
    chain = resolve(catalog, record, Ed25519PrivateKey.generate())
    assert chain["kind"] == "product" and chain["signature"]["valid"]
    assert chain["signature"]["key_status_when_received"] == "active"
    assert chain["log"]["index"] == 0 and chain["log"]["verified"]
    assert chain["product"]["metadata"]["scan_strategy"] == "VCP21D"
    document = ProvDocument.deserialize(content=__import__("json").dumps(
        to_prov_json(chain)), format="json")
    assert any(str(entity.identifier) == record for entity in document.get_records())


def test_catalog_verify_checks_products_and_names_an_edited_one(tmp_path, catalog_location):
    from obslink.server.catalog.self_check import verify_catalog

    station, record = registered_product(tmp_path, catalog_location)
    catalog, store = station.receiver.catalog, station.store
    report = verify_catalog(catalog, product_store=store.check_file)
    assert not report.problems, report.problems
    assert (report.products, report.leaves) == (1, 1)
    stored = store.path_of(catalog.product(record)["sha256"])
    data = bytearray(stored.read_bytes())
    data[100] ^= 1
    stored.write_bytes(bytes(data))
    catalog.conn.execute("UPDATE products SET size = size + 1")
    problems = verify_catalog(catalog, product_store=store.check_file).problems
    assert {problem["where"] for problem in problems} == {record}
    assert any("the station signed" in problem["problem"] and "SHA-256" in problem["problem"]
               for problem in problems)
    assert any(problem["problem"].startswith("its size is") for problem in problems)


def test_chunks_out_of_order_are_checked_whole_from_the_file(tmp_path, catalog_location):
    """In order, the product's SHA-256 is taken as chunks are written; out of order (after
    a restart, say) the file is read again at the end: either way the product is checked."""
    station = Station1(tmp_path, catalog_location)
    outbox = outbox_with(tmp_path)
    number = admitted(outbox, product_file(tmp_path))
    [pending] = outbox.pending()
    station.send(pending.body)
    for index in reversed(range(pending.manifest.chunks)):
        ack = station.send_chunk(pending.manifest, number, index,
                                 outbox.read_chunk(pending, index))
    assert ack.complete
    assert station.store.path_of(pending.manifest.sha256.hex()).read_bytes() == \
        outbox.path_of(number).read_bytes()


def test_a_copy_damaged_on_the_gateways_disk_leaves_as_a_gap(tmp_path):
    outbox = outbox_with(tmp_path)
    admitted(outbox, product_file(tmp_path))
    [pending] = outbox.pending()
    assert outbox.chunk_intact(pending, 1)
    with open(outbox.path_of(pending.id), "r+b") as copy:
        copy.seek(CHUNK + 10)
        copy.write(b"\xff\x00")
    assert not outbox.chunk_intact(pending, 1)
    outbox.drop_damaged(pending, 1)
    assert outbox.pending() == []
    [gap] = outbox.unreported_gaps()
    assert gap["reason"] == "product-damaged" and "chunk 1" in gap["detail"]


def test_the_newest_scan_goes_first(tmp_path):
    outbox = outbox_with(tmp_path)
    numbers = []
    for seed, start in ((0, 1_796_000_400), (1, 1_796_001_000), (2, 1_796_000_700)):
        path = write_cinrad(tmp_path / f"v{seed}.bin.bz2", RadarScan(
            elevations=(0.5,), radials=30, gates=100, seed=seed, start_s=start))
        numbers.append(admitted(outbox, path))
    assert [p.id for p in outbox.pending()] == [numbers[1], numbers[2], numbers[0]]


def test_a_wiped_product_outbox_starts_a_new_epoch(tmp_path):
    """Product numbers start again at 1 only under a new identity: the centre would take a
    new product 1 of the old epoch for the one it registered."""
    first = ProductOutbox(tmp_path / "products", "RADAR-1", None, 10**9)
    epoch = first.epoch
    first.close()
    assert ProductOutbox(tmp_path / "products", "RADAR-1", None, 10**9).epoch == epoch
    import shutil

    shutil.rmtree(tmp_path / "products")
    assert ProductOutbox(tmp_path / "products", "RADAR-1", None, 10**9).epoch != epoch


def test_the_source_forgets_files_the_radar_deleted(tmp_path):
    import threading

    from obslink.agent.product_source import ProductSource

    outbox = outbox_with(tmp_path)
    radar = tmp_path / "radar"
    radar.mkdir()
    first, second = product_file(radar, 0), product_file(radar, 1)
    for path in (first, second):
        os.utime(path, (0, 0))  # settled long ago
    source = ProductSource("radar", {"path": str(radar), "pattern": "*.bz2",
                                     "settle_seconds": 0, "poll_interval": 1},
                           CinradBaseData, outbox, threading.Event())
    assert source.poll() == 2 and source.poll() == 0  # each taken once
    first.unlink()
    source.poll()
    assert [name for (name,) in outbox.conn.execute("SELECT name FROM taken")] == \
        [second.name]


def test_large_buffers_stay_on_the_heap_where_glibc_allows():
    """The agent and the product process ask glibc to serve MiB chunks from the heap
    (docs/products.md): on glibc the setting must be taken."""
    import platform

    from obslink.large_buffers import keep_large_buffers_on_the_heap

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    assert keep_large_buffers_on_the_heap()
