"""API tokens and browser sessions: random secrets shown once, kept only as hashes.

A token is ``obl_<id>_<secret>``: the id (public, 12 hex digits) finds its row, the
secret (256 random bits) is compared with its SHA-256 in constant time. A fast hash is
enough for secrets this long (no dictionary holds them); passwords would need a slow one,
which is why obslink has tokens and no passwords."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

PREFIX = "obl_"
_TOKEN = re.compile(r"obl_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")


def new_token() -> tuple[str, str, str]:
    """(token id, hash of its secret, the token as its holder uses it)."""
    token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    return token_id, secret_hash(secret), f"{PREFIX}{token_id}_{secret}"


def split_token(text: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed token, else None."""
    found = _TOKEN.fullmatch(text.strip())
    return (found.group(1), found.group(2)) if found else None


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(secret_hash(secret), stored_hash)


def new_session() -> tuple[str, str, str]:
    """(session id as the cookie holds it, its hash as the catalog keeps it, CSRF token)."""
    session = secrets.token_urlsafe(32)
    return session, secret_hash(session), secrets.token_urlsafe(24)


def issue_token(catalog, account: str, scopes: tuple[str, ...], valid_s: int | None,
                note: str = "", now_us: int | None = None) -> tuple[dict, str]:
    """A new token for ``account`` (valid ``valid_s`` seconds, or until revoked when None):
    its record and the token itself, which is shown this once and kept nowhere."""
    from obslink.readings import now_us as current_us

    start = current_us() if now_us is None else now_us
    token_id, hashed, token = new_token()
    expires = None if valid_s is None else start + valid_s * 1_000_000
    return catalog.add_token(account, token_id, hashed, scopes, expires, note), token
