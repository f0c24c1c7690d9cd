"""The agent's outbox for large products (radar volumes, tilts, real-time chunks).

A product is copied in whole (a radar deletes or overwrites its files on its own schedule)
into ``files/`` beside a SQLite index, its SHA-256 and its chunks' digests computed on the
way, a piece at a time; only then is its row committed, together with the source's note
that the file was taken, so a kill -9 neither loses nor repeats a product (a copy without a
row is removed at the next start). The row keeps the signed manifest and which chunks the
collector holds, so after any restart only the missing chunks travel again. A product
leaves when the collector says it has registered it.

The room for products is bounded (``max_bytes``): a product larger than the whole room is
refused at the source, and older products not yet delivered are evicted for a newer one;
either becomes a gap report to the centre, with the reason, never a silent loss.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from obslink import wire
from obslink.plugins.products import ProductMetadata
from obslink.readings import now_us
from obslink.sqlite_store import apply_migrations, dicts, open_database, transaction

log = logging.getLogger(__name__)

MIGRATIONS = [
    ("products, the files taken, product gaps", """
        CREATE TABLE products (
            id INTEGER PRIMARY KEY,
            source TEXT NOT NULL,
            name TEXT NOT NULL,
            size INTEGER NOT NULL,
            manifest BLOB NOT NULL,
            observed_us INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            have BLOB NOT NULL,
            manifest_sent INTEGER NOT NULL DEFAULT 0,
            sent_bytes INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE taken (
            source TEXT NOT NULL,
            name TEXT NOT NULL,
            identity TEXT NOT NULL,
            outcome TEXT NOT NULL,
            at INTEGER NOT NULL,
            PRIMARY KEY (source, name)
        );
        CREATE TABLE product_gaps (
            id INTEGER PRIMARY KEY,
            source TEXT NOT NULL,
            name TEXT NOT NULL,
            size INTEGER NOT NULL,
            observed_us INTEGER,
            reason TEXT NOT NULL,
            detail TEXT NOT NULL,
            at INTEGER NOT NULL,
            reported_at INTEGER
        );
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta (key, value) VALUES ('next_product', '1')
    """),
]


@dataclass(frozen=True)
class Pending:
    """A product not yet registered at the centre."""

    id: int
    manifest: wire.Manifest
    body: bytes  # the manifest as signed
    have: bytearray  # one byte per chunk: 1 once the collector holds it
    manifest_sent: bool

    def missing(self) -> list[int]:
        return [index for index, held in enumerate(self.have) if not held]


class ProductTooLarge(Exception):
    """The product can never fit the room for products."""


class ProductOutbox:
    def __init__(self, directory: Path, station: str, epoch: str | None, max_bytes: int,
                 chunk_bytes: int = wire.MAX_CHUNK_BYTES, synchronous: str = "FULL",
                 tidy: bool = True) -> None:
        """``tidy``: remove copies a kill left without a row (only the agent itself may:
        `agent status` reads while a copy may be in progress)."""
        self.directory, self.station = directory, station
        self.max_bytes, self.chunk_bytes = max_bytes, chunk_bytes
        self.synchronous = synchronous
        self.files = directory / "files"
        self.files.mkdir(parents=True, exist_ok=True)
        self.conn = open_database(directory / "products.db", synchronous,
                                  "product outbox").conn
        apply_migrations(self.conn, MIGRATIONS)
        self.epoch = self._epoch(epoch)
        self._lock = threading.RLock()  # the sources and the uplink share the connection
        self._admitting = threading.Lock()
        if tidy:
            self._remove_strays()

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    def _epoch(self, wanted: str | None) -> str:
        """The product outbox's own identity, made with it (``wanted``, else random): its
        product numbers start again only with a new epoch, so a wiped product directory
        never reuses an identity the centre holds (its new products would be taken for
        ones registered already)."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
        if row is not None:
            return row[0]
        waiting = self.conn.execute("SELECT manifest FROM products LIMIT 1").fetchone()
        epoch = (wire.decode_manifest(bytes(waiting[0])).epoch if waiting else None) or \
            wanted or secrets.token_hex(8)
        with transaction(self.conn):
            self.conn.execute("INSERT INTO meta (key, value) VALUES ('epoch', ?)", (epoch,))
        return epoch

    def _remove_strays(self) -> None:
        """Copies whose row was never committed (a kill during the copy)."""
        known = {str(i) for (i,) in self.conn.execute("SELECT id FROM products")}
        for path in self.files.iterdir():
            if path.name not in known:
                path.unlink()

    def path_of(self, product_id: int) -> Path:
        return self.files / str(product_id)

    # -- taking products in -------------------------------------------------------------------

    def taken(self, source: str, name: str, identity: str) -> bool:
        with self._lock:
            row = self.conn.execute("SELECT identity FROM taken WHERE source = ? AND name = ?",
                                    (source, name)).fetchone()
        return row is not None and row[0] == identity

    def forget_missing(self, source: str, present: set[str]) -> int:
        """Forget what was taken of files no longer in the source's directory (a feed
        deletes its chunks after a while): the note of each would otherwise stay forever."""
        with self._lock:
            names = [name for (name,) in self.conn.execute(
                "SELECT name FROM taken WHERE source = ?", (source,)) if name not in present]
            if names:
                with transaction(self.conn):
                    self.conn.executemany("DELETE FROM taken WHERE source = ? AND name = ?",
                                          [(source, name) for name in names])
        return len(names)

    def admit(self, source: str, path: Path, identity: str, metadata: ProductMetadata,
              format_name: str, format_version: str) -> int | None:
        """Copy in a product whose metadata is known already; as take_in."""
        return self.take_in(source, path, identity, lambda: metadata, format_name,
                            format_version)

    def take_in(self, source: str, path: Path, identity: str,
                read_metadata: Callable[[], ProductMetadata], format_name: str,
                format_version: str, unchanged: Callable[[], bool] = lambda: True
                ) -> int | None:
        """Copy the product in and commit it; returns its number, or None when it was
        refused (a gap is recorded) or the file was not ``unchanged`` once read and copied
        (it was being written: a later look takes it). The metadata is read while the
        copy is made, so that the format's parsing overlaps the copy's reading, writing
        and hashing; an error from either leaves no copy behind. Older undelivered
        products are evicted for it."""
        size = path.stat().st_size
        if size > self.max_bytes:
            metadata = read_metadata()
            if unchanged():
                self._refuse(source, path.name, identity, size, metadata.start_us,
                             "product-too-large",
                             f"{path.name} has {size:,} bytes; the outbox holds at most "
                             f"{self.max_bytes:,} of products ([outbox] product_max_bytes)")
            return None
        with self._admitting:  # two product sources must not copy under one number
            return self._admit(source, path, identity, read_metadata, format_name,
                               format_version, unchanged)

    def _admit(self, source: str, path: Path, identity: str, read_metadata,
               format_name: str, format_version: str, unchanged) -> int | None:
        with self._lock:
            number = int(self.conn.execute("SELECT value FROM meta WHERE key = 'next_product'"
                                           ).fetchone()[0])
        target = self.path_of(number)
        try:
            with ThreadPoolExecutor(1, thread_name_prefix="product-copy") as copier:
                copying = copier.submit(self._copy, path, target)
                try:
                    metadata = read_metadata()
                finally:
                    wait([copying])  # the copy has ended before it may be removed
                digest, chunks, copied = copying.result()
            if not unchanged():
                target.unlink(missing_ok=True)
                return None
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        manifest = wire.Manifest(self.station, self.epoch, number, path.name, format_name,
                                 format_version, copied, digest, self.chunk_bytes,
                                 tuple(chunks), _json_safe(metadata.as_dict()), now_us(),
                                 source)
        body = wire.encode_manifest(manifest)
        with self._lock, transaction(self.conn):
            self._make_room(copied)
            self.conn.execute(
                "INSERT INTO products (id, source, name, size, manifest, observed_us, "
                "created_at, have) VALUES (?,?,?,?,?,?,?,?)",
                (number, source, path.name, copied, body, metadata.start_us, now_us(),
                 bytes(len(chunks))))
            self.conn.execute("UPDATE meta SET value = ? WHERE key = 'next_product'",
                              (str(number + 1),))
            self._mark_taken(source, path.name, identity, "taken")
        return number

    def quarantine(self, source: str, name: str, identity: str, reason: str) -> None:
        """A file that is not a whole product: noted, so it is not read again until it
        changes (agent status lists it)."""
        with self._lock, transaction(self.conn):
            self._mark_taken(source, name, identity, f"quarantined: {reason}")

    def _mark_taken(self, source: str, name: str, identity: str, outcome: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO taken (source, name, identity, outcome, at) "
                          "VALUES (?,?,?,?,?)", (source, name, identity, outcome, now_us()))

    def _copy(self, path: Path, target: Path) -> tuple[bytes, list[bytes], int]:
        """The copy, its SHA-256 and its chunks' digests: the whole product's digest on a
        thread of its own (hashlib lets go of the interpreter), beside the chunk's."""
        whole, chunks, copied, feeding = hashlib.sha256(), [], 0, None
        with ThreadPoolExecutor(1, thread_name_prefix="product-digest") as hasher, \
                open(path, "rb") as source, open(target, "wb") as out:
            while piece := source.read(self.chunk_bytes):
                if feeding is not None:
                    feeding.result()
                feeding = hasher.submit(whole.update, piece)
                chunks.append(hashlib.sha256(piece).digest())
                out.write(piece)
                copied += len(piece)
            if feeding is not None:
                feeding.result()
            out.flush()
            os.fsync(out.fileno())
        return whole.digest(), chunks, copied

    def _make_room(self, size: int) -> None:
        held = self.conn.execute("SELECT coalesce(sum(size), 0) FROM products").fetchone()[0]
        for number, name, source, old_size, observed in self.conn.execute(
                "SELECT id, name, source, size, observed_us FROM products ORDER BY "
                "observed_us, id").fetchall():
            if held + size <= self.max_bytes:
                break
            self.conn.execute("DELETE FROM products WHERE id = ?", (number,))
            self._gap(source, name, old_size, observed, "product-evicted",
                      f"{name} ({old_size:,} bytes) was evicted, undelivered, to make room "
                      f"for a newer product ([outbox] product_max_bytes {self.max_bytes:,})")
            self.path_of(number).unlink(missing_ok=True)
            held -= old_size
            log.error("product outbox: evicted %s (%d bytes) undelivered to make room; "
                      "reported to the centre as a gap", name, old_size)

    def _refuse(self, source, name, identity, size, observed, reason, detail) -> None:
        log.error("product %s refused: %s", name, detail)
        with self._lock, transaction(self.conn):
            self._gap(source, name, size, observed, reason, detail)
            self._mark_taken(source, name, identity, f"refused: {detail}")

    def _gap(self, source, name, size, observed, reason, detail) -> None:
        self.conn.execute("INSERT INTO product_gaps (source, name, size, observed_us, reason, "
                          "detail, at) VALUES (?,?,?,?,?,?,?)",
                          (source, name, size, observed, reason, detail, now_us()))

    # -- sending ------------------------------------------------------------------------------

    def pending(self) -> list[Pending]:
        """Products the centre has not registered, newest observation first."""
        with self._lock:
            rows = self.conn.execute(
                "SELECT id, manifest, have, manifest_sent FROM products "
                "ORDER BY observed_us DESC, id DESC").fetchall()
        return [Pending(number, wire.decode_manifest(bytes(body)), bytes(body), bytearray(have),
                        bool(sent))
                for number, body, have, sent in rows]

    def read_chunk(self, pending: Pending, index: int) -> bytes:
        with open(self.path_of(pending.id), "rb") as product:
            product.seek(index * pending.manifest.chunk_bytes)
            return product.read(pending.manifest.chunk_size(index))

    def record_ack(self, ack: wire.ProductAck) -> bool:
        """What the collector holds; True when the product is done (registered or refused
        for good) and has left the outbox."""
        if ack.epoch != self.epoch:
            return False
        # what the collector holds needs no fsync here: lost, it costs chunks sent again,
        # which the collector acknowledges without storing them twice
        with self._lock, _synchronous(self.conn, "NORMAL", self.synchronous), \
                transaction(self.conn):
            row = self.conn.execute("SELECT have, name FROM products WHERE id = ?",
                                    (ack.product,)).fetchone()
            if row is None:
                return False
            if ack.complete or ack.refused:
                self.conn.execute("DELETE FROM products WHERE id = ?", (ack.product,))
                if ack.refused:
                    log.error("the collector refused product %s for good: %s", row[1],
                              ack.refused)
                done = True
            else:
                # the collector holds nothing of it without the manifest (never received,
                # or its bytes were wrong and it starts afresh)
                have = bytearray(len(row[0])) if ack.need_manifest else bytearray(row[0])
                for first, last in ack.have:
                    for index in range(max(first, 0), min(last + 1, len(have))):
                        have[index] = 1
                self.conn.execute("UPDATE products SET have = ?, manifest_sent = ? WHERE "
                                  "id = ?", (bytes(have), 0 if ack.need_manifest else 1,
                                             ack.product))
                done = False
        if done:
            self.path_of(ack.product).unlink(missing_ok=True)
        return done

    def chunk_intact(self, pending: Pending, index: int) -> bool:
        """Whether the outbox's copy of a chunk still has the digest its manifest signed."""
        return hashlib.sha256(self.read_chunk(pending, index)).digest() == \
            pending.manifest.chunk_sha256[index]

    def drop_damaged(self, pending: Pending, index: int) -> None:
        """The outbox's copy changed on its own disk (a failing card): no sending can mend
        it, so the product leaves, reported to the centre as a gap."""
        detail = (f"{pending.manifest.name}: chunk {index} of the outbox's copy no longer has "
                  "the SHA-256 its manifest signed (the gateway's storage changed it)")
        log.error("product %d dropped: %s", pending.id, detail)
        with self._lock, transaction(self.conn):
            self.conn.execute("DELETE FROM products WHERE id = ?", (pending.id,))
            self._gap(pending.manifest.source, pending.manifest.name, pending.manifest.size,
                      pending.manifest.metadata.get("start_us"), "product-damaged", detail)
        self.path_of(pending.id).unlink(missing_ok=True)

    def unreported_gaps(self) -> list[dict]:
        with self._lock:
            return dicts(self.conn.execute(
                "SELECT id, source, name, size, observed_us, reason, detail, at FROM "
                "product_gaps WHERE reported_at IS NULL ORDER BY id"))

    def gap_reported(self, gap_id: int) -> None:
        with self._lock:
            self.conn.execute("UPDATE product_gaps SET reported_at = ? WHERE id = ?",
                              (now_us(), gap_id))

    def stats(self) -> dict:
        """What waits, what was lost, what was quarantined (`obslink agent status`)."""
        with self._lock:
            count, held = self.conn.execute("SELECT count(*), coalesce(sum(size), 0) FROM "
                                            "products").fetchone()
            waiting = dicts(self.conn.execute(
                "SELECT id, name, size, have, manifest_sent FROM products ORDER BY "
                "observed_us DESC, id DESC LIMIT 10"))
            gaps = dicts(self.conn.execute(
                "SELECT name, size, reason, detail, at, reported_at FROM product_gaps "
                "ORDER BY id DESC LIMIT 10"))
            lost = self.conn.execute("SELECT count(*) FROM product_gaps").fetchone()[0]
            quarantined = dicts(self.conn.execute(
                "SELECT source, name, outcome, at FROM taken WHERE outcome LIKE "
                "'quarantined:%' ORDER BY at DESC LIMIT 10"))
        for product in waiting:
            have = product.pop("have")
            product["chunks_held_by_collector"] = f"{sum(have)} of {len(have)}"
            product["manifest_acknowledged"] = bool(product.pop("manifest_sent"))
        return {"products": count, "bytes": held, "waiting": waiting, "gaps": lost,
                "recent_gaps": gaps, "recent_quarantine": quarantined}


@contextmanager
def _synchronous(conn, level: str, back: str):
    conn.execute(f"PRAGMA synchronous={level}")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA synchronous={back}")


def _json_safe(value):
    """Metadata as msgpack and JSON both carry it."""
    return json.loads(json.dumps(value))
