"""Keys: stations' Ed25519 signing keys (generation, files on disk, key ids) and the
collector's X25519 decryption key for sealed messages."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from obslink.errors import ConfigError


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short stable name for a public key: the first 16 hex digits of its SHA-256."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_bytes(public_key: Ed25519PublicKey | X25519PublicKey) -> bytes:
    """The raw 32 bytes of an Ed25519 or X25519 public key."""
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def write_secret(path: Path, data: bytes | str, exclusive: bool = False) -> None:
    """Write a key or password into a file created with mode 0600 (readable by its owner
    only). ``exclusive``: fail if the file exists instead of replacing its content."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    with os.fdopen(os.open(path, flags, 0o600), "wb") as out:
        out.write(data.encode() if isinstance(data, str) else data)


def share_owner(path: Path, like: Path) -> None:
    """Give ``path`` the owner of ``like`` when root writes it: a secret an operator makes
    with sudo beside a service's catalog must stay readable by the service's account."""
    if os.geteuid() == 0:
        owner = Path(like).stat()
        os.chown(path, owner.st_uid, owner.st_gid)


def publish_secret_once(path: Path, data: bytes) -> bool:
    """Create ``path`` (mode 0600) holding ``data``, complete or not at all: written beside
    it first, then linked into place, so that a process starting at the same moment never
    reads it half-written. False when the file exists already (another process won)."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    write_secret(partial, data)
    try:
        os.link(partial, path)
    except FileExistsError:
        return False
    finally:
        partial.unlink()
    return True


def write_keypair(private_path: Path, public_path: Path, overwrite: bool = False) -> str:
    """Create a key pair; the private key file is created with mode 0600. Returns the key id."""
    private_path, public_path = Path(private_path), Path(public_path)
    for path in (private_path, public_path):
        if path.exists() and not overwrite:
            raise ConfigError(f"{path} already exists; choose another path or pass --force "
                              "(the old key will no longer be usable)")
    private_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    if private_path.exists():
        private_path.unlink()
    write_secret(private_path, pem, exclusive=True)
    public_path.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return key_id(key.public_key())


def load_private_key(path: Path) -> Ed25519PrivateKey:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read private key {path}: {exc.strerror}; create one with "
                          "`obslink agent keygen`") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} holds a {type(key).__name__}, obslink needs an Ed25519 key "
                          "(`obslink agent keygen` makes one)")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read public key {path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not a PEM public key ({exc}); pass the .pub file "
                          "`obslink agent keygen` wrote") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path} holds a {type(key).__name__}, not an Ed25519 public key")
    return key


def public_key_from_bytes(raw: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(raw)


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


def x25519_public_key_from_hex(text: str) -> X25519PublicKey:
    """The collector's public key as an agent's ``encrypt_to`` setting gives it."""
    try:
        return X25519PublicKey.from_public_bytes(bytes.fromhex(text))
    except ValueError:
        raise ConfigError(f"{text!r} is not an X25519 public key (64 hex digits, as `obslink "
                          "agent enrol` saved it in collector_encryption_key)") from None
