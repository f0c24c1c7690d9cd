"""The signed envelope: a body (or a bundle of batch bodies) under a station's Ed25519
signature (docs/protocol.md, "Envelope" and "Bundle envelope"). ``sign`` makes one; sealing
(encryption to the collector) is another layer, in :mod:`obslink.wire.sealed`; reading
either from a payload is :mod:`obslink.wire.incoming`.

The signature covers ``SIGNING_CONTEXT + topic + b"\\n" + body``: binding the topic means a
batch cannot be replayed on another station's topic. A bundle's covers ``BUNDLE_CONTEXT +
topic + b"\\n" + SHA-256(body 1) + SHA-256(body 2) + …``, so each inner batch keeps its own
identity and a later check of one batch's provenance needs only the digest list besides
that batch's own body.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import msgpack
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from obslink.errors import WireError

ENVELOPE_VERSION = 1
SIGNING_CONTEXT = b"obslink-batch-v1\n"
BUNDLE_CONTEXT = b"obslink-bundle-v1\n"
MAX_BUNDLE_BATCHES = 256  # what this collector accepts in one bundle (announced in acks)
MAX_ENVELOPE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Envelope:
    key_id: str
    body: bytes | None  # one batch or gap report; None for a bundle
    signature: bytes
    bodies: tuple[bytes, ...] = ()  # a bundle's batch bodies, in the signed order
    # bytes that travel beside the signed body, bound to it by a digest the body holds (a
    # product chunk's data: its header is signed, not the MiB; docs/protocol.md)
    attachment: bytes | None = None

    @property
    def is_bundle(self) -> bool:
        return self.body is None


def signed_message(topic: str, body: bytes) -> bytes:
    return SIGNING_CONTEXT + topic.encode() + b"\n" + body


def bundle_digests(bodies) -> bytes:
    """The SHA-256 digests of a bundle's bodies, concatenated: what its signature covers."""
    return b"".join(hashlib.sha256(body).digest() for body in bodies)


def signed_bundle(topic: str, digests: bytes) -> bytes:
    return BUNDLE_CONTEXT + topic.encode() + b"\n" + digests


def sign(body: bytes, topic: str, key: Ed25519PrivateKey, key_id: str,
         attachment: bytes | None = None) -> bytes:
    """One body (a batch, gap report, key announcement, product manifest or chunk header)
    in a signed envelope; ``attachment`` travels beside it unsigned, and the body must hold
    its digest (a product chunk's data)."""
    signature = key.sign(signed_message(topic, body))
    envelope = {"v": ENVELOPE_VERSION, "kid": key_id, "body": body, "sig": signature}
    if attachment is not None:
        envelope["data"] = attachment
    return msgpack.packb(envelope, use_bin_type=True)


def sign_bundle(bodies: list[bytes], topic: str, key: Ed25519PrivateKey, key_id: str) -> bytes:
    """Several batch bodies under one signature (for a collector that announced bundles)."""
    signature = key.sign(signed_bundle(topic, bundle_digests(bodies)))
    return msgpack.packb({"v": ENVELOPE_VERSION, "kid": key_id, "bodies": list(bodies),
                          "sig": signature}, use_bin_type=True)


def check_size(payload: bytes) -> None:
    if len(payload) > MAX_ENVELOPE_BYTES:
        raise WireError(f"message of {len(payload)} bytes exceeds {MAX_ENVELOPE_BYTES}")


def envelope_from_map(data: dict) -> Envelope:
    """A version-1 envelope from its decoded map."""
    key, signature = data.get("kid"), data.get("sig")
    if not (isinstance(key, str) and isinstance(signature, bytes) and len(signature) == 64):
        raise WireError("envelope lacks a key id or a 64-byte signature")
    if "bodies" in data:
        bodies = data["bodies"]
        if "body" in data or not (isinstance(bodies, list)
                                  and 0 < len(bodies) <= MAX_BUNDLE_BATCHES
                                  and all(isinstance(b, bytes) for b in bodies)):
            raise WireError(f"bundle envelope needs 1-{MAX_BUNDLE_BATCHES} batch bodies "
                            "and no single body")
        return Envelope(key, None, signature, tuple(bodies))
    body, attachment = data.get("body"), data.get("data")
    if not isinstance(body, bytes):
        raise WireError("envelope lacks a body")
    if attachment is not None and not isinstance(attachment, bytes):
        raise WireError("an envelope's data must be bytes")
    return Envelope(key, body, signature, attachment=attachment)


def verify(envelope: Envelope, topic: str, public_key: Ed25519PublicKey) -> bool:
    if envelope.is_bundle:
        message = signed_bundle(topic, bundle_digests(envelope.bodies))
    else:
        message = signed_message(topic, envelope.body)
    try:
        public_key.verify(envelope.signature, message)
    except InvalidSignature:
        return False
    return True
