"""The product store (docs/products.md): products kept whole as files outside the catalog,
named by their content.

Layout under the root (``<catalog file>.products/`` unless ``--product-store`` says):

- ``sha256/ab/cd/abcd…`` : a product, named by its SHA-256 in hex, under its first two
  pairs of hex digits (so no directory holds more than 65,536 entries of another);
- ``incoming/<station>/<epoch>-<n>.manifest`` : a product being received: the signed
  manifest as it came (msgpack of topic, key id, signature, body, received time);
- ``incoming/<station>/<epoch>-<n>.part`` : its bytes so far, each chunk written at its
  place; ``….have`` : one byte per chunk, 1 once that chunk is on disk (written after it).

A chunk is written once: one whose ``have`` byte is set is not written again. Every write is
fsynced before the collector acknowledges what it holds, so an acknowledged chunk survives a
power cut (the chunks that arrived together are written, then synced once). Two products
with the same bytes share one file.

Several collector workers share one store (their product processes take a product's
messages in turns, docs/scaling.md): staging only ever creates what is missing (a file is
made under a name of its own, then linked into place, never replacing one), and a product
another worker has finished meanwhile is finished here too.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from pathlib import Path

import msgpack

from obslink import wire
from obslink.errors import ConfigError

READ_PIECE = 1 << 20
# a staging file's temporary is written and linked in moments: one an hour old was left by
# a worker killed while it wrote it
STALE_TEMPORARY_S = 3600.0


def default_product_store(catalog_location: str) -> Path:
    """``<catalog file>.products``; a catalog URL (PostgreSQL) has no file to put it
    beside, so the store's option must be given."""
    from obslink.server.catalog.backends import scheme_of

    if scheme_of(str(catalog_location)):
        raise ConfigError("a catalog given by URL keeps its products in a directory named "
                          "with --product-store (the same one for every collector worker "
                          "and the HTTP API: a shared file system when they run on several "
                          "machines)")
    return Path(str(catalog_location) + ".products")


class ProductStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)  # its directories are made as products arrive

    def path_of(self, sha256_hex: str) -> Path:
        return self.root / "sha256" / sha256_hex[:2] / sha256_hex[2:4] / sha256_hex

    def _staging(self, station: str, epoch: str, number: int, suffix: str) -> Path:
        return self.root / "incoming" / station / f"{epoch}-{number}.{suffix}"

    def check_file(self, sha256_hex: str, size: int) -> str | None:
        """What is wrong with a stored product's file (for `catalog verify`), or None."""
        path = self.path_of(sha256_hex)
        if not path.is_file():
            return f"its file {path} is missing from the product store"
        digest, length = _file_digest(path)
        if length != size or digest.hexdigest() != sha256_hex:
            return (f"its file {path} holds {length:,} bytes with SHA-256 {digest.hexdigest()};"
                    f" the station signed {size:,} bytes with SHA-256 {sha256_hex}")
        return None

    # -- receiving ----------------------------------------------------------------------------

    def staged(self, station: str, epoch: str, number: int) -> dict | None:
        """The staged manifest (topic, key_id, signature, body, received_at, manifest)."""
        path = self._staging(station, epoch, number, "manifest")
        try:
            saved = msgpack.unpackb(path.read_bytes(), raw=False)
        except FileNotFoundError:
            return None
        saved["manifest"] = wire.decode_manifest(saved["body"])
        return saved

    def stage(self, manifest: wire.Manifest, topic: str, key_id: str, signature: bytes,
              body: bytes, received_at: int) -> None:
        """Make room for a product's chunks (idempotent: what is staged is kept, also when
        another worker stages the same product at the same moment)."""
        staging = self._staging(manifest.station, manifest.epoch, manifest.product, "manifest")
        if staging.exists():
            return
        staging.parent.mkdir(parents=True, exist_ok=True)
        have = self._staging(manifest.station, manifest.epoch, manifest.product, "have")
        part = self._staging(manifest.station, manifest.epoch, manifest.product, "part")
        _create_synced(have, bytes(manifest.chunks))
        try:
            descriptor = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            pass  # another worker's (its chunks may be in it already): kept
        else:
            try:
                os.ftruncate(descriptor, manifest.size)
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        # the manifest last: its presence says the rest is ready
        _create_synced(staging, msgpack.packb({
            "topic": topic, "key_id": key_id, "signature": signature, "body": body,
            "received_at": received_at}, use_bin_type=True))

    def have(self, manifest: wire.Manifest) -> bytearray:
        path = self._staging(manifest.station, manifest.epoch, manifest.product, "have")
        try:
            return bytearray(path.read_bytes())
        except FileNotFoundError:
            return bytearray(manifest.chunks)

    def write_chunks(self, chunks: list[tuple[wire.Manifest, int, bytes]]) -> list[bool]:
        """Put verified chunks in their places, each product's file synced once and then
        its ``have`` bytes written and synced once (a group costs two fsyncs a product, not
        two a chunk); for each chunk, False if it was there already (or earlier in the
        list)."""
        stored, touched = [], {}
        for manifest, index, data in chunks:
            identity = (manifest.station, manifest.epoch, manifest.product)
            if identity not in touched:
                touched[identity] = (manifest, self.have(manifest), [])
            _manifest, have, fresh = touched[identity]
            stored.append(not have[index])
            if not have[index]:
                have[index] = 1
                fresh.append((index, data))
        for manifest, _have, fresh in touched.values():
            if fresh:
                self._write_synced_at(manifest, "part", [
                    (data, index * manifest.chunk_bytes) for index, data in fresh])
                # a chunk is marked held only once its bytes are on disk
                self._write_synced_at(manifest, "have", [(b"\1", index) for index, _ in fresh])
        return stored

    def _write_synced_at(self, manifest: wire.Manifest, suffix: str,
                         pieces: list[tuple[bytes, int]]) -> None:
        path = self._staging(manifest.station, manifest.epoch, manifest.product, suffix)
        descriptor = os.open(path, os.O_WRONLY)
        try:
            for data, offset in pieces:
                os.pwrite(descriptor, data, offset)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def finish(self, manifest: wire.Manifest, digest=None) -> Path:
        """Move a product whose every chunk is on disk into its place; ValueError if its
        bytes are not the manifest's (then it is staged afresh). ``digest``: a SHA-256
        object already fed every chunk in order as it was written (else the file is read
        again). Idempotent."""
        final = self.path_of(manifest.sha256.hex())
        part = self._staging(manifest.station, manifest.epoch, manifest.product, "part")
        try:
            if digest is None:
                digest, _length = _file_digest(part)
            if digest.digest() != manifest.sha256:
                self.discard(manifest)
                raise ValueError(f"the product's SHA-256 is {digest.hexdigest()}, its "
                                 f"manifest says {manifest.sha256.hex()}")
            if final.exists():
                part.unlink()  # the same bytes are stored already
            else:
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(part, final)
                sync_directory(final.parent)
        except FileNotFoundError:
            # the received bytes are gone: another worker finished the product (it checked
            # them before it moved them), unless they are nowhere
            if not final.exists():
                raise ValueError("neither the received bytes nor the stored product are "
                                 "there") from None
        return final

    def discard(self, manifest: wire.Manifest) -> None:
        """Remove what is staged of a product (after it is registered, or when its bytes
        turned out wrong)."""
        for suffix in ("manifest", "have", "part"):
            self._staging(manifest.station, manifest.epoch, manifest.product,
                          suffix).unlink(missing_ok=True)

    def remove_stale_temporaries(self, older_than_s: float = STALE_TEMPORARY_S) -> int:
        """Remove staging files a killed worker left half-written (``….tmp``, older than
        any write in progress); returns how many."""
        removed, limit = 0, time.time() - older_than_s
        for path in (self.root / "incoming").glob("*/*.tmp"):
            try:
                if path.stat().st_mtime < limit:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:  # another worker removed it first
                pass
        return removed


def _file_digest(path: Path) -> tuple:
    """A file's SHA-256 (the hash object) and its length, read a piece at a time."""
    digest, length = hashlib.sha256(), 0
    with open(path, "rb") as product:
        while piece := product.read(READ_PIECE):
            digest.update(piece)
            length += len(piece)
    return digest, length


def _create_synced(path: Path, data: bytes) -> None:
    """``path`` with ``data``, whole and on disk, unless it exists already (then it is
    kept: another worker made it, and may have written to it since)."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    with open(temporary, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    try:
        os.link(temporary, path)  # unlike a rename, never replaces what is there
    except FileExistsError:
        pass
    except OSError:  # a file system without hard links: one worker a store there
        if not path.exists():
            os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    sync_directory(path.parent)


def sync_directory(path: Path) -> None:
    """Make a rename or a new file in ``path`` durable (the directory's entry)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
