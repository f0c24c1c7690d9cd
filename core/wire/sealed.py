"""The sealed message: a signed envelope encrypted to the collector's X25519 key
(docs/protocol.md, "Sealed message"), for networks whose messages cross brokers the
operator does not control.

The station signs first and seals the signed envelope, so the signature still covers exactly
what the station produced and is kept in the catalog. Per message: an ephemeral X25519 key,
HKDF-SHA256 over the shared secret, ChaCha20-Poly1305 with the topic as associated data (a
sealed message moved to another topic does not open). A sealed message says so with its
``"sealed"`` key (naming the scheme); that marker, not the map's size, tells it from an
envelope.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import msgpack
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from obslink.errors import WireError
from obslink.keys import public_bytes
from obslink.wire.checks import unpack

SEALED_VERSION = 1
SCHEME = "x25519-hkdf-sha256-chacha20poly1305"
SEAL_CONTEXT = b"obslink-seal-v1\n"
SEALED_MARKER = "sealed"


@dataclass(frozen=True)
class SealedMessage:
    """A sealed message as decoded, not yet opened (opening needs the collector's key)."""

    fields: dict


def _key(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=ephemeral + recipient,
                info=SEAL_CONTEXT).derive(shared)


def seal(payload: bytes, topic: str, recipient: X25519PublicKey) -> bytes:
    """A signed envelope encrypted so that only ``recipient`` opens it, on ``topic`` only."""
    ephemeral = X25519PrivateKey.generate()
    epk = public_bytes(ephemeral.public_key())
    key = _key(ephemeral.exchange(recipient), epk, public_bytes(recipient))
    nonce = os.urandom(12)
    ciphertext = ChaCha20Poly1305(key).encrypt(nonce, payload, SEAL_CONTEXT + topic.encode())
    return msgpack.packb({"v": SEALED_VERSION, SEALED_MARKER: SCHEME, "epk": epk,
                          "nonce": nonce, "ct": ciphertext}, use_bin_type=True)


def is_sealed_map(data) -> bool:
    return isinstance(data, dict) and SEALED_MARKER in data


def is_sealed(payload: bytes) -> bool:
    """Whether ``payload`` is a sealed message (it carries the explicit marker)."""
    try:
        return is_sealed_map(unpack(payload, "message"))
    except WireError:
        return False


def unseal(message: SealedMessage | bytes, topic: str, key: X25519PrivateKey | None) -> bytes:
    """The signed envelope inside a sealed message (as decoded, or its bytes); WireError if
    it cannot be opened."""
    if key is None:
        raise WireError("the message is sealed but this collector has no decryption key "
                        "(collector serve --decryption-key)")
    if isinstance(message, bytes):
        data = unpack(message, "sealed message")
        if not is_sealed_map(data):
            raise WireError("the message is not sealed (it has no \"sealed\" marker)")
    else:
        data = message.fields
    if data.get("v") != SEALED_VERSION:
        raise WireError(f"sealed message of version {data.get('v')!r}; this collector opens "
                        f"version {SEALED_VERSION}")
    scheme, epk, nonce, ciphertext = (data.get(name) for name in
                                      (SEALED_MARKER, "epk", "nonce", "ct"))
    if scheme != SCHEME:
        raise WireError(f"unknown sealing scheme {scheme!r}; this collector speaks {SCHEME}")
    if not (isinstance(epk, bytes) and len(epk) == 32 and isinstance(nonce, bytes)
            and len(nonce) == 12 and isinstance(ciphertext, bytes)):
        raise WireError("sealed message lacks a 32-byte ephemeral key, a 12-byte nonce or "
                        "the ciphertext")
    try:
        shared = key.exchange(X25519PublicKey.from_public_bytes(epk))
        return ChaCha20Poly1305(_key(shared, epk, public_bytes(key.public_key()))).decrypt(
            nonce, ciphertext, SEAL_CONTEXT + topic.encode())
    except (InvalidTag, ValueError):
        raise WireError("sealed message does not open with this collector's key for this "
                        "topic (wrong key, another topic, or altered)") from None
