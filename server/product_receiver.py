"""The collector's side of products (docs/products.md): manifests and chunks from the
stations' product topics, verified, put in the product store a chunk at a time, registered
in the catalog once whole, and answered on the station's product-ack topic with what is held.

It runs on a thread and a catalog connection of its own, so a 30 MB volume arriving never
holds up the observations' commits; the chunks wait in their own queue, and only a chunk at a
time (1 MiB) is in memory.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from obslink import wire
from obslink.errors import WireError
from obslink.server.catalog import Refusal, open_catalog
from obslink.server.product_store import ProductStore
from obslink.server.station_keys import StationKeys
from obslink.server.verify import open_signed

log = logging.getLogger(__name__)

# product messages handled as one group at most: their chunks are synced to disk together
GROUP_MESSAGES = 16
DECODERS = {"manifest": wire.decode_manifest, "chunk": wire.decode_chunk_header,
            "product-gap": wire.decode_product_gap}


class ProductReceiver:
    def __init__(self, catalog_location: str, store: ProductStore, publish,
                 decryption_key: X25519PrivateKey | None = None,
                 committed_by: str = "") -> None:
        self.location, self.store, self.publish = catalog_location, store, publish
        self.decryption_key = decryption_key
        self.committed_by = committed_by
        self.queue: queue.Queue = queue.Queue()
        self._keys: StationKeys | None = None  # made on the receiving thread
        # products being received: (station, epoch, number) -> their staged manifest, so a
        # chunk does not read and decode it again (the store's files stay the truth)
        self._staged: dict[tuple[str, str, int], dict] = {}
        # … and the SHA-256 of their chunks written so far, while they come in order: the
        # whole product is then not read again to check it (out of order, it is)
        self._digests: dict[tuple[str, str, int], tuple[int, object]] = {}
        self._hashing: dict[tuple[str, str, int], Future] = {}  # each one's last update
        self._hasher = ThreadPoolExecutor(1, thread_name_prefix="product-digest")
        self._thread = threading.Thread(target=self._run, name="products", daemon=True)
        self.catalog = None
        self.registered = self.chunks_stored = self.chunks_again = self.refused = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.queue.put(None)
        self._thread.join(30)

    def put(self, topic: str, payload: bytes, received_at: int) -> None:
        self.queue.put((topic, payload, received_at))

    def _run(self) -> None:
        self.catalog = open_catalog(self.location)
        self.catalog.committed_by = self.committed_by
        stale = self.store.remove_stale_temporaries()
        if stale:
            log.info("products: removed %d staging files that killed workers left "
                     "half-written", stale)
        try:
            running = True
            while running:
                group = [self.queue.get()]
                while len(group) < GROUP_MESSAGES:  # what waits already: nothing more
                    try:
                        group.append(self.queue.get_nowait())
                    except queue.Empty:
                        break
                running = None not in group
                try:
                    self.handle_group([item for item in group if item is not None])
                except Exception:  # never end the thread: products would stop here unseen
                    log.exception("product messages not taken; their stations send them "
                                  "again")
        finally:
            self._hasher.shutdown()
            self.catalog.close()

    def handle(self, topic: str, payload: bytes, received_at: int) -> None:
        self.handle_group([(topic, payload, received_at)])

    def handle_group(self, items: list[tuple[str, bytes, int]]) -> None:
        """Product messages that arrived together, in order: each verified and answered;
        their chunks written together (a product's file synced once for them all) and
        acknowledged once that is done, a product at a time."""
        writes: list[tuple[str, wire.ChunkHeader, bytes, dict]] = []
        for topic, payload, received_at in items:
            try:
                self._handle(topic, payload, received_at, writes)
            except Exception:  # not acknowledged: the station sends it again
                log.exception("could not take a product message on %s; its station sends "
                              "it again", topic)
        if not writes:
            return
        try:
            stored = self.store.write_chunks([(staged["manifest"], chunk.index, data)
                                              for _answer, chunk, data, staged in writes])
        except Exception:
            log.exception("could not write %d product chunks; their stations send them "
                          "again", len(writes))
            return
        answers = {}
        for (answer, chunk, data, staged), fresh in zip(writes, stored):
            if fresh:
                self.chunks_stored += 1
                self._follow(chunk, data)
            else:
                self.chunks_again += 1
            answers[(chunk.station, chunk.epoch, chunk.product)] = (answer, chunk, staged)
        for answer, chunk, staged in answers.values():
            try:
                ack = self._held(staged, wire.ProductAck(chunk.epoch, chunk.product))
            except Exception:  # not acknowledged: the station asks again
                log.exception("product %s/%s/%d: could not check what is held", chunk.station,
                              chunk.epoch, chunk.product)
                continue
            self.publish(answer, wire.encode_product_ack(ack))

    def _handle(self, topic: str, payload: bytes, received_at: int, writes: list) -> None:
        if self._keys is None:
            self._keys = StationKeys(self.catalog)
        self._keys.refresh()  # a revoked key is refused from its revocation on
        opened = open_signed(topic, payload, received_at, self._keys, self.decryption_key,
                             "product")
        if isinstance(opened, Refusal):
            return self._refuse(opened)
        station, envelope, status = opened
        network = topic.split("/")[2]

        def refuse(reason: str, detail: str) -> None:
            self._refuse(Refusal(topic, reason, detail, payload, received_at,
                                 station=station, key_id=envelope.key_id))

        if envelope.is_bundle:
            return refuse("malformed", "product messages travel alone, not in a bundle")
        if status != "active":
            return refuse("revoked-key", f"key {envelope.key_id!r} is {status}")
        try:
            kind = wire.product_kind(envelope.body)
            item = DECODERS[kind](envelope.body)
        except WireError as exc:
            return refuse("malformed", str(exc))
        if item.station != station:
            return refuse("wrong-topic", f"the product names station {item.station!r} but "
                          f"came on the topic of {station!r}")
        answer = wire.product_ack_topic(network, station)
        if kind == "manifest":
            ack = self._manifest(item, topic, envelope, received_at)
        elif kind == "chunk":
            ack = self._chunk(item, envelope.attachment, answer, writes)
            if ack is None:
                return  # written with the group's other chunks, then acknowledged
        else:
            self.catalog.record_product_gap(station, item.epoch, {
                "id": item.id, "name": item.name, "size": item.size,
                "observed_us": item.observed_us, "reason": item.reason,
                "detail": item.detail, "at": item.at}, received_at)
            log.warning("station %s lost product %s (%d bytes): %s", station, item.name,
                        item.size, item.detail)
            ack = wire.ProductAck(item.epoch, 0, gap=item.id)
        self.publish(answer, wire.encode_product_ack(ack))

    def _manifest(self, manifest: wire.Manifest, topic: str, envelope,
                  received_at: int) -> wire.ProductAck:
        ack = wire.ProductAck(manifest.epoch, manifest.product)
        if self.catalog.product_registered(manifest.station, manifest.epoch,
                                           manifest.product):
            ack.complete = True
            return ack
        self.store.stage(manifest, topic, envelope.key_id, envelope.signature, envelope.body,
                         received_at)
        if self.catalog.product_registered(manifest.station, manifest.epoch,
                                           manifest.product):
            # another worker registered it meanwhile (and removed what it had staged)
            self.store.discard(manifest)
            ack.complete = True
            return ack
        staged = self.store.staged(manifest.station, manifest.epoch, manifest.product)
        if staged is None:  # removed by another worker that found its bytes wrong: again
            ack.need_manifest = True
            return ack
        if staged["manifest"] != manifest:
            ack.refused = ("a different manifest with this product's identity is being "
                           "received already; the outbox's epoch or product numbers were "
                           "reused")
            return ack
        return self._held(staged, ack)

    def _chunk(self, chunk: wire.ChunkHeader, data: bytes | None, answer: str,
               writes: list) -> wire.ProductAck | None:
        """The answer to a chunk that is not to be written (registered already, no
        manifest, refused), else None with the chunk added to ``writes``."""
        ack = wire.ProductAck(chunk.epoch, chunk.product)
        if self.catalog.product_registered(chunk.station, chunk.epoch, chunk.product):
            ack.complete = True
            return ack
        staged = self._staged_manifest(chunk.station, chunk.epoch, chunk.product)
        if staged is None:
            ack.need_manifest = True
            return ack
        manifest = staged["manifest"]
        problem = None
        if chunk.index >= manifest.chunks:
            problem = f"the manifest has {manifest.chunks} chunks"
        elif chunk.size != manifest.chunk_size(chunk.index):
            problem = (f"{chunk.size} bytes; the manifest makes it "
                       f"{manifest.chunk_size(chunk.index)}")
        elif chunk.sha256 != manifest.chunk_sha256[chunk.index]:
            problem = "its SHA-256 is not the one the signed manifest lists for it"
        else:
            problem = wire.attachment_problem(chunk, data)
        if problem:
            self.refused += 1
            log.warning("chunk %d of product %s/%s/%d refused: %s; the station sends it again",
                        chunk.index, chunk.station, chunk.epoch, chunk.product, problem)
            ack.bad.append((chunk.index, problem))
            return self._held(staged, ack)
        writes.append((answer, chunk, data, staged))
        return None

    def _follow(self, chunk: wire.ChunkHeader, data: bytes) -> None:
        identity = (chunk.station, chunk.epoch, chunk.product)
        written, digest = self._digests.get(identity, (0, None))
        if chunk.index == 0:
            written, digest = 0, hashlib.sha256()
        if digest is None or chunk.index != written:
            self._digests.pop(identity, None)  # out of order: the file is read at the end
            self._hashing.pop(identity, None)
            return
        # on a thread of its own (hashlib lets go of the interpreter), beside the next
        # chunk's checks; that thread takes the updates in order
        self._hashing[identity] = self._hasher.submit(digest.update, data)
        self._digests[identity] = (written + 1, digest)

    def _staged_manifest(self, station: str, epoch: str, number: int) -> dict | None:
        identity = (station, epoch, number)
        if identity not in self._staged:
            staged = self.store.staged(station, epoch, number)
            if staged is None:
                return None
            if len(self._staged) > 1000:  # stations that never finish a product
                self._staged.clear()
            self._staged[identity] = staged
        return self._staged[identity]

    def _held(self, staged: dict, ack: wire.ProductAck) -> wire.ProductAck:
        manifest = staged["manifest"]
        have = self.store.have(manifest)
        if all(have):
            identity = (manifest.station, manifest.epoch, manifest.product)
            written, digest = self._digests.pop(identity, (0, None))
            if identity in self._hashing:
                self._hashing.pop(identity).result()
            try:
                self.store.finish(manifest, digest if written == manifest.chunks else None)
            except ValueError as exc:
                self._staged.pop(identity, None)
                log.error("product %s/%s/%d: %s; received afresh", manifest.station,
                          manifest.epoch, manifest.product, exc)
                ack.have = []
                ack.need_manifest = True
                return ack
            ack.record = self.catalog.register_product(
                manifest, staged["body"], staged["topic"], staged["key_id"],
                staged["signature"], staged["received_at"])
            self.store.discard(manifest)
            self._staged.pop(identity, None)
            self.registered += 1
            ack.complete = True
            log.info("product %s registered: %s, %d bytes", ack.record, manifest.name,
                     manifest.size)
            return ack
        ack.have = wire.spans(index for index, held in enumerate(have) if held)
        return ack

    def _refuse(self, refusal: Refusal) -> None:
        self.refused += 1
        log.warning("refused product message on %s: %s (%s)", refusal.topic, refusal.reason,
                    refusal.detail)
        self.catalog.record_refusals([refusal])
