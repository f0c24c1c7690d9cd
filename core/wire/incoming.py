"""What arrives on a station's data, gap or key topic, told apart by explicit markers: a
sealed message by its ``"sealed"`` key, an envelope by its version ``"v"``. A new envelope
version is one more entry in ``ENVELOPE_READERS``."""

from __future__ import annotations

from typing import Callable

from obslink.errors import WireError
from obslink.wire.checks import unpack
from obslink.wire.envelope import MAX_ENVELOPE_BYTES, Envelope, check_size, envelope_from_map
from obslink.wire.envelope2 import EnvelopeV2, envelope_v2_from_list
from obslink.wire.sealed import SealedMessage, is_sealed_map

ENVELOPE_READERS: dict[int, Callable[[dict], Envelope]] = {1: envelope_from_map}


def open_message(payload: bytes) -> Envelope | EnvelopeV2 | SealedMessage:
    """Decode a message from a station without verifying or opening it: a signed envelope
    (a v1 map or a v2 array), or a sealed message to open with :func:`obslink.wire.unseal`
    and then :func:`obslink.wire.open_envelope`."""
    check_size(payload)
    data = unpack(payload, "envelope")
    if isinstance(data, list):
        return envelope_v2_from_list(data, MAX_ENVELOPE_BYTES)
    if not isinstance(data, dict):
        raise WireError("envelope is neither a v1 map nor a v2 array")
    if is_sealed_map(data):
        return SealedMessage(data)
    version = data.get("v")
    read = ENVELOPE_READERS.get(version) if type(version) is int else None
    if read is None:
        spoken = ", ".join(map(str, sorted(ENVELOPE_READERS)))
        raise WireError(f"envelope of version {version!r}; this collector reads version "
                        f"{spoken}")
    return read(data)


def open_envelope(payload: bytes) -> Envelope | EnvelopeV2:
    """A signed envelope (not a sealed message), e.g. the one a sealed message held."""
    message = open_message(payload)
    if isinstance(message, SealedMessage):
        raise WireError("a sealed message holds another sealed message, not an envelope")
    return message
