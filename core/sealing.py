"""Optional payload encryption: a signed message sealed to the collector's X25519 key.

For networks whose messages cross brokers the operator does not control. The station signs
first and seals the signed envelope, so the signature still covers exactly what the station
produced and is kept in the catalog. Per message: an ephemeral X25519 key, HKDF-SHA256 over
the shared secret, ChaCha20-Poly1305 with the topic as associated data (a sealed message
moved to another topic does not open). docs/protocol.md has the layout.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import msgpack
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from obslink.errors import ConfigError, WireError
from obslink.keys import publish_secret_once

SCHEME = "x25519-hkdf-sha256-chacha20poly1305"
SEAL_CONTEXT = b"obslink-seal-v1\n"
_SEALED_FIELDS = 5  # {"v", "sealed", "epk", "nonce", "ct"}; a plain envelope has 4


def _key(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=ephemeral + recipient,
                info=SEAL_CONTEXT).derive(shared)


def raw_public(key: X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def seal_to(payload: bytes, topic: str, recipient: X25519PublicKey) -> bytes:
    ephemeral = X25519PrivateKey.generate()
    epk = raw_public(ephemeral.public_key())
    key = _key(ephemeral.exchange(recipient), epk, raw_public(recipient))
    nonce = os.urandom(12)
    ciphertext = ChaCha20Poly1305(key).encrypt(nonce, payload, SEAL_CONTEXT + topic.encode())
    return msgpack.packb({"v": 1, "sealed": SCHEME, "epk": epk, "nonce": nonce,
                          "ct": ciphertext}, use_bin_type=True)


def is_sealed(payload: bytes) -> bool:
    """Cheap test: a sealed message is a 5-entry map (a plain envelope has 4 entries)."""
    return payload[:1] == bytes([0x80 | _SEALED_FIELDS])


def unseal(payload: bytes, topic: str, key: X25519PrivateKey | None) -> bytes:
    """The signed envelope inside a sealed message; WireError if it cannot be opened."""
    if key is None:
        raise WireError("the message is sealed but this collector has no decryption key "
                        "(collector serve --decryption-key)")
    try:
        data = msgpack.unpackb(payload, raw=False)
        scheme, epk, nonce, ciphertext = data["sealed"], data["epk"], data["nonce"], data["ct"]
    except Exception:
        raise WireError("sealed message does not decode") from None
    if scheme != SCHEME:
        raise WireError(f"unknown sealing scheme {scheme!r}; this collector speaks {SCHEME}")
    if not (isinstance(epk, bytes) and len(epk) == 32 and isinstance(nonce, bytes)
            and len(nonce) == 12 and isinstance(ciphertext, bytes)):
        raise WireError("sealed message lacks a 32-byte ephemeral key, a 12-byte nonce or "
                        "the ciphertext")
    try:
        shared = key.exchange(X25519PublicKey.from_public_bytes(epk))
        return ChaCha20Poly1305(_key(shared, epk, raw_public(key.public_key()))).decrypt(
            nonce, ciphertext, SEAL_CONTEXT + topic.encode())
    except (InvalidTag, ValueError):
        raise WireError("sealed message does not open with this collector's key for this "
                        "topic (wrong key, another topic, or altered)") from None


def load_or_create_decryption_key(path: Path) -> X25519PrivateKey:
    """The collector's X25519 key (PEM, mode 0600), created on first use. Collector workers
    sharing a catalog may start together: one creates the key, the others load it."""
    path = Path(path)
    if not path.exists():
        key = X25519PrivateKey.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        if publish_secret_once(path, key.private_bytes(serialization.Encoding.PEM,
                                                       serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption())):
            return key
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path} is readable by others; chmod 600 {path}")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except ValueError as exc:
        raise ConfigError(f"{path} is not a PEM private key ({exc})") from None
    if not isinstance(key, X25519PrivateKey):
        raise ConfigError(f"{path} holds no X25519 key; the decryption key is an X25519 key")
    return key


def public_key_from_hex(text: str) -> X25519PublicKey:
    try:
        return X25519PublicKey.from_public_bytes(bytes.fromhex(text))
    except ValueError:
        raise ConfigError(f"{text!r} is not an X25519 public key (64 hex digits, as `obslink "
                          "agent enrol` saved it in collector_encryption_key)") from None
