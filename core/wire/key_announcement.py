"""The key announcement: a station names its next key, signed with its current one, on its
key topic (docs/protocol.md, "Key announcement")."""

from __future__ import annotations

from dataclasses import dataclass

import msgpack

from obslink.errors import WireError
from obslink.wire.checks import expect, is_int, unpack_kind
from obslink.wire.topics import check_station_id

KEY_ANNOUNCEMENT_VERSION = 1


@dataclass
class KeyRotation:
    """A station announces its next key, signed with its current one (on its key topic)."""

    station: str
    epoch: str  # the announcing outbox's epoch: the collector's ack answers under it
    key_id: str
    public_key: bytes  # raw 32-byte Ed25519 public key
    at: int  # µs


def encode_key_rotation(rotation: KeyRotation) -> bytes:
    return msgpack.packb({"v": KEY_ANNOUNCEMENT_VERSION, "kind": "key",
                          "station": rotation.station, "epoch": rotation.epoch,
                          "kid": rotation.key_id, "key": rotation.public_key,
                          "at": rotation.at}, use_bin_type=True)


def decode_key_rotation(body: bytes) -> KeyRotation:
    data = unpack_kind(body, "key", KEY_ANNOUNCEMENT_VERSION, "key announcement")
    try:
        rotation = KeyRotation(data["station"], data["epoch"], data["kid"], data["key"],
                               data["at"])
    except KeyError as exc:
        raise WireError(f"key announcement lacks {exc}") from None
    check_station_id(rotation.station)
    expect(isinstance(rotation.epoch, str) and 0 < len(rotation.epoch) <= 64, "epoch")
    expect(isinstance(rotation.public_key, bytes) and len(rotation.public_key) == 32, "key")
    expect(isinstance(rotation.key_id, str) and 0 < len(rotation.key_id) <= 64, "kid")
    expect(is_int(rotation.at), "at")
    return rotation
