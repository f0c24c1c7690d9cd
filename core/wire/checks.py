"""Small checks every message decoder shares."""

from __future__ import annotations

from typing import Any

import msgpack

from obslink.errors import WireError


def unpack(payload: bytes, what: str) -> Any:
    """``payload`` decoded from msgpack; WireError naming ``what`` if it does not decode."""
    try:
        return msgpack.unpackb(payload, raw=False)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise WireError(f"{what} is not valid msgpack ({type(exc).__name__})") from None


def unpack_kind(body: bytes, kind: str, version: int, what: str) -> dict:
    """A signed body of one ``kind`` (gap report, key announcement) as its map; WireError
    if it does not decode or is another kind or version."""
    data = unpack(body, what)
    if not isinstance(data, dict) or data.get("v") != version or data.get("kind") != kind:
        raise WireError(f"not an obslink v{version} {what}")
    return data


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise WireError(f"batch field {what} is malformed")
