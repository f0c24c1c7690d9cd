"""Deciding whether a message from the broker is a batch the catalog may take.

Nothing is written before: the topic names a station, that station is enrolled, the key id
is one of its active keys, the signature over topic + body is valid, and the body decodes
and names the same station. Every other outcome is a :class:`Refusal` with a reason code.
"""

from __future__ import annotations

from typing import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from obslink import wire
from obslink.errors import WireError
from obslink.server.catalog import AcceptedBatch, AcceptedGap, Refusal

KeyLookup = Callable[[str], dict[str, tuple[bytes, str]]]

REFUSAL_REASONS = {
    "wrong-topic": "the topic is not obslink/v1/<network>/<station>/data (or …/gap), or "
                   "the batch names another station than its topic",
    "malformed": "the message or batch body does not decode",
    "unknown-station": "no station with this id is enrolled",
    "unknown-key": "the key id is not one of the station's keys",
    "revoked-key": "the key was revoked",
    "bad-signature": "the signature does not match topic and body",
}


def verify_message(topic: str, payload: bytes, received_at: int,
                   keys_for: KeyLookup) -> AcceptedBatch | AcceptedGap | Refusal:
    def refuse(reason: str, detail: str, **known) -> Refusal:
        return Refusal(topic, reason, detail, payload, received_at, **known)

    kind = "gap" if topic.endswith("/gap") else "data"
    try:
        _network, station = wire.parse_data_topic(topic, kind)
        wire.check_station_id(station)
    except WireError as exc:
        return refuse("wrong-topic", str(exc))
    try:
        envelope = wire.open_envelope(payload)
    except WireError as exc:
        return refuse("malformed", str(exc), station=station)
    keys = keys_for(station)
    if not keys:
        return refuse("unknown-station", f"station {station!r} is not enrolled",
                      station=station, key_id=envelope.key_id)
    if envelope.key_id not in keys:
        return refuse("unknown-key", f"key {envelope.key_id!r} is not a key of {station!r}",
                      station=station, key_id=envelope.key_id)
    raw_key, status = keys[envelope.key_id]
    if status != "active":
        return refuse("revoked-key", f"key {envelope.key_id!r} is {status}", station=station,
                      key_id=envelope.key_id)
    if not wire.verify(envelope, topic, Ed25519PublicKey.from_public_bytes(raw_key)):
        return refuse("bad-signature", "signature does not verify against the station key "
                      "for this topic", station=station, key_id=envelope.key_id)
    if kind == "gap":
        return _gap(topic, station, envelope, received_at, refuse)
    try:
        batch = wire.decode_batch(envelope.body)
    except WireError as exc:
        return refuse("malformed", str(exc), station=station, key_id=envelope.key_id,
                      verified=True)
    if batch.station != station:
        return refuse("wrong-topic", f"batch names station {batch.station!r} but came on "
                      f"the topic of {station!r}", station=station, key_id=envelope.key_id,
                      epoch=batch.epoch, seq=batch.seq, verified=True)
    return AcceptedBatch(batch, topic, envelope.key_id, envelope.signature, envelope.body,
                         received_at)


def _gap(topic: str, station: str, envelope: wire.Envelope, received_at: int, refuse):
    try:
        gap = wire.decode_gap(envelope.body)
    except WireError as exc:
        return refuse("malformed", str(exc), station=station, key_id=envelope.key_id)
    if gap.station != station:
        return refuse("wrong-topic", f"gap report names station {gap.station!r} but came on "
                      f"the topic of {station!r}", station=station, key_id=envelope.key_id)
    return AcceptedGap(gap, topic, envelope.key_id, envelope.signature, received_at)
