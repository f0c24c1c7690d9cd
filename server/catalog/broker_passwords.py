"""Broker passwords, whatever backend keeps the accounts.

A station's broker password is derived, HMAC-SHA256 of its id and a generation number under
a secret kept beside the catalog (``broker-accounts.key``, mode 0600). The account exists
from the moment the station is registered, so a broker configuration written after
registration already admits it, and enrolment hands out that same password instead of making
a new one. Only an explicit ``station credentials`` (a leaked password) starts a new
generation. Mosquitto gets only the hashes (``mosquitto_password_hash``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from pathlib import Path

from obslink.errors import StorageError
from obslink.keys import publish_secret_once, share_owner

BROKER_SECRET_FILE = "broker-accounts.key"  # beside the catalog
COLLECTOR_ACCOUNT = "obslink-collector"
PASSWORD_HASH_ITERATIONS = 1000


def mosquitto_password_hash(password: str) -> str:
    """Mosquitto 2's password-file hash: ``$7$`` PBKDF2-HMAC-SHA512, iterations, salt."""
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PASSWORD_HASH_ITERATIONS)
    return (f"$7${PASSWORD_HASH_ITERATIONS}${base64.b64encode(salt).decode()}$"
            f"{base64.b64encode(digest).decode()}")


def derive_password(secret: bytes, station: str, generation: int) -> str:
    digest = hmac.new(secret, f"obslink broker password\n{station}\n{generation}".encode(),
                      hashlib.sha256)
    return digest.hexdigest()[:40]


def account_secret(path: Path, owner_like: Path) -> bytes:
    """The secret passwords derive from, made (owned like ``owner_like``) on first use."""
    if not path.exists() and publish_secret_once(path, secrets.token_bytes(32)):
        share_owner(path, owner_like)  # else another process made it
    try:
        secret = path.read_bytes()
    except OSError as exc:
        raise StorageError(f"cannot read {path} ({exc.strerror}): it holds the secret "
                           "broker passwords derive from; the collector's user must be "
                           "able to read it") from None
    if len(secret) != 32:
        raise StorageError(f"{path} is not a broker-account secret (32 bytes); restore "
                           "it from a backup, or move it away to make a new one (every "
                           "station then needs `obslink collector station credentials`)")
    return secret
