"""Large products (radar volumes, tilts, real-time chunks) on the wire (docs/protocol.md,
"Products"): a signed manifest, then signed chunks of at most 1 MiB, each in an envelope on
the station's product topic; the collector answers on the station's product-ack topic with
the chunks it holds. Neither side needs the whole product in memory: a chunk is checked
against its own digest and the manifest's list of digests, the product against its SHA-256
once every chunk is on disk.

A product's identity is (station, outbox epoch, product number): the number is the agent's,
never reused within the epoch, so a product sent again after any restart is the same one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import msgpack

from obslink.errors import WireError
from obslink.wire.checks import is_int, unpack, unpack_kind
from obslink.wire.topics import check_station_id

PRODUCT_VERSION = 1
MAX_CHUNK_BYTES = 1 << 20
MAX_CHUNKS = 1 << 16  # 64 GiB at 1 MiB chunks: far beyond any radar product
MAX_METADATA_BYTES = 64 * 1024


@dataclass(frozen=True)
class Manifest:
    station: str
    epoch: str
    product: int  # the agent's product number within its epoch
    name: str  # the file's name at the source
    format: str  # product format (cinrad, nexrad2)
    format_version: str
    size: int
    sha256: bytes  # of the whole product
    chunk_bytes: int  # every chunk but the last has exactly this many bytes
    chunk_sha256: tuple[bytes, ...]  # one digest per chunk, in order
    metadata: dict  # the product format's metadata (ProductMetadata.as_dict())
    created: int  # µs, when the agent took the product in
    source: str = ""  # the agent's source name

    @property
    def chunks(self) -> int:
        return len(self.chunk_sha256)

    def chunk_size(self, index: int) -> int:
        return min(self.chunk_bytes, self.size - index * self.chunk_bytes)


@dataclass(frozen=True)
class Chunk:
    station: str
    epoch: str
    product: int
    index: int
    sha256: bytes
    data: bytes


@dataclass
class ProductAck:
    """What the collector holds of one product (``have``: chunk ranges [first, last]),
    whether it is registered (``complete``), or why it is refused for good."""

    epoch: str
    product: int
    have: list[tuple[int, int]] = field(default_factory=list)
    complete: bool = False
    need_manifest: bool = False  # chunks came for a product whose manifest it has not
    bad: list[tuple[int, str]] = field(default_factory=list)  # chunks refused: send again
    refused: str | None = None  # the whole product, for good (with the reason)
    record: str | None = None  # the product's identifier in the catalog, once complete
    gap: int | None = None  # set instead: the product gap report of this id is recorded


@dataclass(frozen=True)
class ProductGap:
    """A product a station's outbox refused (larger than its room) or evicted undelivered:
    the centre records the hole and why."""

    station: str
    epoch: str
    id: int
    name: str
    size: int
    observed_us: int | None
    reason: str  # product-too-large, product-evicted
    detail: str
    at: int  # µs


def encode_product_gap(gap: ProductGap) -> bytes:
    return msgpack.packb({"v": PRODUCT_VERSION, "kind": "product-gap", "station": gap.station,
                         "epoch": gap.epoch, "product": 0, "id": gap.id, "name": gap.name,
                         "size": gap.size, "observed_us": gap.observed_us,
                         "reason": gap.reason, "detail": gap.detail, "at": gap.at},
                        use_bin_type=True)


def decode_product_gap(body: bytes) -> ProductGap:
    data = unpack_kind(body, "product-gap", PRODUCT_VERSION, "product gap report")
    station, epoch, _ = _identity(data, "product gap report")
    values = [data.get(name) for name in ("id", "name", "size", "observed_us", "reason",
                                          "detail", "at")]
    number, name, size, observed, reason, detail, at = values
    if not (is_int(number) and number >= 0 and isinstance(name, str) and is_int(size)
            and (observed is None or is_int(observed)) and isinstance(reason, str)
            and 0 < len(reason) <= 64 and isinstance(detail, str) and len(detail) <= 1024
            and is_int(at)):
        raise WireError("product gap report: its fields are malformed")
    return ProductGap(station, epoch, number, name, size, observed, reason, detail, at)


def encode_manifest(manifest: Manifest) -> bytes:
    return msgpack.packb({
        "v": PRODUCT_VERSION, "kind": "manifest", "station": manifest.station,
        "epoch": manifest.epoch, "product": manifest.product, "name": manifest.name,
        "format": manifest.format, "format_version": manifest.format_version,
        "size": manifest.size, "sha256": manifest.sha256, "chunk_bytes": manifest.chunk_bytes,
        "chunk_sha256": b"".join(manifest.chunk_sha256), "metadata": manifest.metadata,
        "created": manifest.created, "source": manifest.source}, use_bin_type=True)


def encode_chunk(chunk: Chunk) -> bytes:
    """The chunk's header, the body its signature covers; the data travels beside it as
    the envelope's attachment (``wire.sign(header, topic, key, kid, chunk.data)``), bound
    by the SHA-256 the header holds: signing a 1 MiB chunk itself cost each side more than
    everything else it does with it."""
    return msgpack.packb({
        "v": PRODUCT_VERSION, "kind": "chunk", "station": chunk.station, "epoch": chunk.epoch,
        "product": chunk.product, "index": chunk.index, "sha256": chunk.sha256,
        "size": len(chunk.data)}, use_bin_type=True)


def product_kind(body: bytes) -> str:
    """"manifest", "chunk" or "product-gap"; WireError for anything else."""
    data = unpack(body, "product message")
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind not in ("manifest", "chunk", "product-gap") or data.get("v") != PRODUCT_VERSION:
        raise WireError(f"not an obslink v{PRODUCT_VERSION} product manifest, chunk or gap "
                        "report")
    return kind


def _identity(data: dict, what: str) -> tuple[str, str, int]:
    station, epoch, product = data.get("station"), data.get("epoch"), data.get("product")
    if not (isinstance(station, str) and isinstance(epoch, str) and 0 < len(epoch) <= 64
            and is_int(product) and product >= 0):
        raise WireError(f"{what} lacks its station, epoch or product number")
    check_station_id(station)
    return station, epoch, product


def decode_manifest(body: bytes) -> Manifest:
    data = unpack_kind(body, "manifest", PRODUCT_VERSION, "product manifest")
    station, epoch, product = _identity(data, "product manifest")
    size, chunk_bytes, digests = data.get("size"), data.get("chunk_bytes"), \
        data.get("chunk_sha256")
    if not (is_int(size) and size > 0 and is_int(chunk_bytes)
            and 0 < chunk_bytes <= MAX_CHUNK_BYTES):
        raise WireError(f"product manifest: size {size!r} or chunk size {chunk_bytes!r} is "
                        f"not usable (chunks of 1 to {MAX_CHUNK_BYTES} bytes)")
    chunks = -(-size // chunk_bytes)
    if not (isinstance(digests, bytes) and len(digests) == 32 * chunks
            and chunks <= MAX_CHUNKS):
        raise WireError(f"product manifest: {size} bytes in chunks of {chunk_bytes} are "
                        f"{chunks} chunks, and it lists "
                        f"{len(digests) // 32 if isinstance(digests, bytes) else 'no'} digests")
    texts = [data.get(name) for name in ("name", "format", "format_version", "source")]
    metadata, sha, created = data.get("metadata"), data.get("sha256"), data.get("created")
    if not (all(isinstance(text, str) and len(text) <= 255 for text in texts)
            and texts[0] and isinstance(metadata, dict) and isinstance(sha, bytes)
            and len(sha) == 32 and is_int(created)):
        raise WireError("product manifest: name, format, metadata, SHA-256 or creation time "
                        "malformed")
    return Manifest(station, epoch, product, texts[0], texts[1], texts[2], size, sha,
                    chunk_bytes, tuple(digests[i:i + 32] for i in range(0, len(digests), 32)),
                    metadata, created, texts[3])


@dataclass(frozen=True)
class ChunkHeader:
    """What a chunk's signature covers: which chunk, and its data's length and SHA-256."""

    station: str
    epoch: str
    product: int
    index: int
    sha256: bytes
    size: int


def decode_chunk_header(body: bytes) -> ChunkHeader:
    data = unpack_kind(body, "chunk", PRODUCT_VERSION, "product chunk")
    station, epoch, product = _identity(data, "product chunk")
    index, sha, size = data.get("index"), data.get("sha256"), data.get("size")
    if not (is_int(index) and 0 <= index < MAX_CHUNKS and isinstance(sha, bytes)
            and len(sha) == 32 and is_int(size) and 0 < size <= MAX_CHUNK_BYTES):
        raise WireError("product chunk: index, SHA-256 or size malformed")
    return ChunkHeader(station, epoch, product, index, sha, size)


def attachment_problem(header: ChunkHeader, attachment: bytes | None) -> str | None:
    """Why the envelope's attachment is not the data the signed header describes."""
    if attachment is None or len(attachment) != header.size:
        return (f"the envelope carries {'no' if attachment is None else len(attachment)} "
                f"bytes of data; the signed header says {header.size}")
    if hashlib.sha256(attachment).digest() != header.sha256:
        return "the data's SHA-256 is not the one its signed header gives (changed on the way)"
    return None


def decode_chunk(body: bytes, attachment: bytes | None) -> Chunk:
    """A chunk from its signed header and the envelope's attachment, which must be the
    data the header describes (length and SHA-256)."""
    header = decode_chunk_header(body)
    problem = attachment_problem(header, attachment)
    if problem:
        raise WireError(f"product chunk: {problem}")
    return Chunk(header.station, header.epoch, header.product, header.index, header.sha256,
                 attachment)


def encode_product_ack(ack: ProductAck) -> bytes:
    body = {"v": PRODUCT_VERSION, "kind": "product-ack", "epoch": ack.epoch,
            "product": ack.product, "have": [list(span) for span in ack.have]}
    for name in ("complete", "need_manifest"):
        if getattr(ack, name):
            body[name] = True
    if ack.bad:
        body["bad"] = [list(item) for item in ack.bad]
    if ack.refused:
        body["refused"] = ack.refused
    if ack.record:
        body["record"] = ack.record
    if ack.gap is not None:
        body["gap"] = ack.gap
    return msgpack.packb(body, use_bin_type=True)


def decode_product_ack(payload: bytes) -> ProductAck:
    data = unpack_kind(payload, "product-ack", PRODUCT_VERSION, "product ack")
    try:
        return ProductAck(str(data["epoch"]), int(data["product"]),
                          [(int(a), int(b)) for a, b in data.get("have", [])],
                          bool(data.get("complete")), bool(data.get("need_manifest")),
                          [(int(i), str(r)) for i, r in data.get("bad", [])],
                          data.get("refused"), data.get("record"),
                          int(data["gap"]) if "gap" in data else None)
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(f"malformed product ack ({type(exc).__name__}: {exc})") from None


def spans(indexes) -> list[tuple[int, int]]:
    """Sorted chunk indexes as [first, last] ranges."""
    result: list[tuple[int, int]] = []
    for index in sorted(indexes):
        if result and index == result[-1][1] + 1:
            result[-1] = (result[-1][0], index)
        else:
            result.append((index, index))
    return result
