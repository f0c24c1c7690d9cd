"""Protocol v2's envelope: one or more compact batch bodies (and any contexts the collector
may not know yet) under one Ed25519 signature, deflated when that is smaller
(docs/protocol.md, "Version 2").

On the wire: a msgpack array ``[0x20 | flags, key id prefix (2 bytes), signature (64),
inner]``; ``inner`` is msgpack ``[[context, …], body, …]`` (with flag 4, ``[[context, …],
columns]``: the bodies in column form, :mod:`obslink.wire.columns`), raw-deflated when flag 2
is set. Flag 1 marks live data (scheduling advice, like v1's lane property, and as
untrusted). The signature covers ``SIGNING_CONTEXT_V2 + topic + "\\n"`` and, per body, the
SHA-256 of its context and of the body: each batch keeps its own identity, the contexts
are bound to it, and the deflate layer is only a way of carrying those exact bytes.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass

import msgpack
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from obslink.errors import WireError
from obslink.wire.columns import from_columns, to_columns

ENVELOPE_V2 = 2
SIGNING_CONTEXT_V2 = b"obslink-batch-v2\n"
MARK, MARK_MASK = 0x20, 0xF0
LIVE, DEFLATED, COLUMNS = 1, 2, 4
KEY_PREFIX_BYTES = 2


@dataclass(frozen=True)
class EnvelopeV2:
    key_prefix: str  # the first hex digits of the signing key's id
    signature: bytes
    bodies: tuple[bytes, ...]
    contexts: tuple[bytes, ...]  # contexts sent along, for a collector that lacks them
    live: bool


def digest_pairs(items) -> bytes:
    """SHA-256 of each (context, body)'s context and body, concatenated: what a v2
    signature covers besides the topic."""
    sha = hashlib.sha256
    return b"".join(sha(context).digest() + sha(body).digest() for context, body in items)


def signed_message_v2(topic: str, pairs: bytes) -> bytes:
    return SIGNING_CONTEXT_V2 + topic.encode() + b"\n" + pairs


def _deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    return packer.compress(data) + packer.flush()


def sign_v2(items: list[tuple[bytes, bytes]], send_contexts: list[bytes], topic: str,
            key: Ed25519PrivateKey, key_id: str, live: bool = False) -> bytes:
    """(context, body) pairs signed on ``topic``; ``send_contexts`` travel along."""
    signature = key.sign(signed_message_v2(topic, digest_pairs(items)))
    bodies = [body for _, body in items]
    forms = [(0, msgpack.packb([send_contexts, *bodies], use_bin_type=True))]
    if len(bodies) > 1:
        columns = to_columns(bodies)
        if columns is not None:
            forms.append((COLUMNS, msgpack.packb([send_contexts, columns],
                                                 use_bin_type=True)))
    forms += [(flags | DEFLATED, _deflate(inner)) for flags, inner in forms]
    flags, inner = min(forms, key=lambda form: len(form[1]))
    return msgpack.packb([MARK | flags | (LIVE if live else 0),
                          bytes.fromhex(key_id[:2 * KEY_PREFIX_BYTES]), signature, inner],
                         use_bin_type=True)


def is_live_v2(payload: bytes) -> bool:
    """Whether a v2 payload says it is live, read from its first bytes (no decoding)."""
    return (len(payload) > 1 and payload[0] == 0x94 and payload[1] & MARK_MASK == MARK
            and bool(payload[1] & LIVE))


def envelope_v2_from_list(data: list, limit: int) -> EnvelopeV2:
    """A v2 envelope from its decoded array; ``limit``: the most bytes ``inner`` may inflate
    to."""
    if not (len(data) == 4 and type(data[0]) is int and data[0] & MARK_MASK == MARK):
        raise WireError("v2 envelope is not [flags, key id prefix, signature, inner]")
    flags, prefix, signature, inner = data
    if not (type(prefix) is bytes and len(prefix) == KEY_PREFIX_BYTES
            and type(signature) is bytes and len(signature) == 64 and type(inner) is bytes):
        raise WireError("v2 envelope lacks a 2-byte key id prefix, a 64-byte signature or "
                        "its batches")
    if flags & DEFLATED:
        unpacker = zlib.decompressobj(-15)
        try:
            inner = unpacker.decompress(inner, limit)
        except zlib.error as exc:
            raise WireError(f"v2 envelope's batches do not inflate ({exc})") from None
        if unpacker.unconsumed_tail:
            raise WireError(f"v2 envelope's batches inflate beyond {limit} bytes")
        if not unpacker.eof:
            raise WireError("v2 envelope's deflated batches are cut short")
    try:
        items = msgpack.unpackb(inner, raw=False)
    except Exception as exc:
        raise WireError(f"v2 envelope's batches are not valid msgpack "
                        f"({type(exc).__name__})") from None
    if flags & COLUMNS:
        if not (type(items) is list and len(items) == 2):
            raise WireError("v2 envelope in column form is not [[contexts], columns]")
        items = [items[0], *from_columns(items[1])]
    if not (type(items) is list and len(items) >= 2 and type(items[0]) is list
            and all(type(item) is bytes for item in chain_items(items))):
        raise WireError("v2 envelope holds no [[contexts], body, …] of byte strings")
    return EnvelopeV2(prefix.hex(), signature, tuple(items[1:]), tuple(items[0]),
                      bool(flags & LIVE))


def chain_items(items: list):
    yield from items[0]
    yield from items[1:]
