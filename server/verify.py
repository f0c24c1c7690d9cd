"""Deciding whether a message from the broker is a batch the catalog may take.

Nothing is written before: the topic names a station, that station is enrolled, the key id
is one of its active keys, the signature over topic + body (or, for a bundle, over topic +
its bodies' digests) is valid, and each body decodes and names the same station. Every other
outcome is a :class:`Refusal` with a reason code.
"""

from __future__ import annotations

from typing import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from obslink import wire
from obslink.errors import WireError
from obslink.keys import key_id
from obslink.server.catalog import (AcceptedBatch, AcceptedGap, AcceptedKey, Refusal,
                                     SignedBundle)
from obslink.server.verify_v2 import Contexts, verify_v2

KeyLookup = Callable[[str], dict[str, tuple[bytes, str]]]

REFUSAL_REASONS = {
    "wrong-topic": "the topic is not obslink/v1/<network>/<station>/data (or …/gap, …/key, "
                   "…/product, or obslink/v2/…/data), the envelope is of the other "
                   "protocol version than its topic, "
                   "or the message names another station than its topic",
    "unknown-context": "a protocol v2 batch names a context this collector does not hold "
                       "(after a catalog restore, say); its station is asked to send it "
                       "along and does, nothing is lost",
    "malformed": "the message or batch body does not decode",
    "oversized": f"the message is larger than {wire.MAX_ENVELOPE_BYTES} bytes",
    "unknown-station": "no station with this id is enrolled",
    "unknown-key": "the key id is not one of the station's keys",
    "revoked-key": "the key was revoked, or retired after its successor's grace period",
    "bad-signature": "the signature does not match topic and body",
    "key-in-use": "an announced key is registered to another station",
    "replay": "a batch arrived that its station no longer holds: below the station's replay "
              "window (it had that batch and every earlier one acknowledged, evicted or "
              "parked), whether the catalog stored it already (a late copy) or not, or one "
              "the station reported evicted; never stored again",
    "unstorable": "the catalog cannot store a verified batch (a value or limit it cannot "
                  "hold); its station parks it with the reason; the collector's log has the "
                  "error",
    "decryption-failed": "a sealed message does not open with the collector's key for its "
                         "topic",
}

Outcome = AcceptedBatch | AcceptedGap | AcceptedKey | Refusal


def open_signed(topic: str, payload: bytes, received_at: int, keys_for: KeyLookup,
                decryption_key: X25519PrivateKey | None, kind: str
                ) -> tuple[str, wire.Envelope, str] | Refusal:
    """(station, envelope, its key's status) of a v1 message whose signature verifies
    against a key of the station its topic names, or the Refusal saying why not."""
    opened = open_envelope_of(topic, payload, received_at, decryption_key, kind)
    if isinstance(opened, Refusal):
        return opened
    station, envelope = opened
    if isinstance(envelope, wire.EnvelopeV2):
        return Refusal(topic, "malformed", f"a protocol v2 envelope on a {kind} topic (v2 "
                       f"carries data only, on {wire.TOPIC_ROOT_V2}/…/data)", payload,
                       received_at, station=station)
    return check_signed(topic, station, envelope, keys_for(station), payload, received_at)


def open_envelope_of(topic: str, payload: bytes, received_at: int,
                     decryption_key: X25519PrivateKey | None, kind: str
                     ) -> tuple[str, wire.Envelope | wire.EnvelopeV2] | Refusal:
    """(station, envelope) of a message, opened if sealed, not yet verified; or the
    Refusal saying why it cannot be read."""
    def refuse(reason: str, detail: str, **known) -> Refusal:
        return Refusal(topic, reason, detail, payload, received_at, **known)

    try:
        _network, station = wire.parse_data_topic(topic, kind)
        wire.check_station_id(station)
    except WireError as exc:
        return refuse("wrong-topic", str(exc))
    if len(payload) > wire.MAX_ENVELOPE_BYTES:
        return refuse("oversized", f"{len(payload)} bytes; a message may have at most "
                      f"{wire.MAX_ENVELOPE_BYTES}", station=station)
    try:
        envelope = wire.open_message(payload)
    except WireError as exc:
        return refuse("malformed", str(exc), station=station)
    if isinstance(envelope, wire.SealedMessage):
        try:
            signed = wire.unseal(envelope, topic, decryption_key)
        except WireError as exc:
            return refuse("decryption-failed", str(exc), station=station)
        try:
            envelope = wire.open_envelope(signed)
        except WireError as exc:
            return refuse("malformed", str(exc), station=station)
    if isinstance(envelope, wire.EnvelopeV2) != wire.is_v2_topic(topic):
        return refuse("wrong-topic", f"a protocol v{2 if wire.is_v2_topic(topic) else 1} "
                      f"topic carries a v{1 if wire.is_v2_topic(topic) else 2} envelope",
                      station=station)
    return station, envelope


def check_signed(topic: str, station: str, envelope: wire.Envelope, keys: dict,
                 payload: bytes, received_at: int) -> tuple[str, wire.Envelope, str] | Refusal:
    """(station, envelope, its key's status) if a v1 envelope's signature verifies."""
    def refuse(reason: str, detail: str, **known) -> Refusal:
        return Refusal(topic, reason, detail, payload, received_at, **known)

    if not keys:
        return refuse("unknown-station", f"station {station!r} is not enrolled",
                      station=station, key_id=envelope.key_id)
    if envelope.key_id not in keys:
        return refuse("unknown-key", f"key {envelope.key_id!r} is not a key of {station!r}",
                      station=station, key_id=envelope.key_id)
    raw_key, status = keys[envelope.key_id]
    if not wire.verify(envelope, topic, Ed25519PublicKey.from_public_bytes(raw_key)):
        return refuse("bad-signature", "signature does not verify against the station key "
                      "for this topic", station=station, key_id=envelope.key_id)
    return station, envelope, status


def verify_message(topic: str, payload: bytes, received_at: int, keys_for: KeyLookup,
                   decryption_key: X25519PrivateKey | None = None,
                   contexts: Contexts | None = None) -> list[Outcome]:
    """One outcome per batch the message carries (one, or a bundle's several); a message
    refused before its signature checked out is one refusal. ``contexts`` resolves v2
    batch contexts (without it, v2 messages are refused as naming unknown contexts)."""
    def refuse(reason: str, detail: str, **known) -> Refusal:
        return Refusal(topic, reason, detail, payload, received_at, **known)

    kind = topic.rsplit("/", 1)[-1] if topic.endswith(("/gap", "/key")) else "data"
    opened = open_envelope_of(topic, payload, received_at, decryption_key, kind)
    if isinstance(opened, Refusal):
        return [opened]
    station, envelope = opened
    if isinstance(envelope, wire.EnvelopeV2):
        keys = keys_for(station)
        if not keys:
            return [refuse("unknown-station", f"station {station!r} is not enrolled",
                           station=station)]

        def revoked(key_id: str, status: str, columns: list) -> list[Outcome]:
            return _revoked_columns(refuse, station, key_id, status, columns)
        return verify_v2(topic, station, envelope, keys, contexts or Contexts(_nothing),
                         received_at, payload, refuse, revoked)
    opened = check_signed(topic, station, envelope, keys_for(station), payload, received_at)
    if isinstance(opened, Refusal):
        return [opened]
    station, envelope, status = opened
    if status != "active":
        # Signed by the key, so the station (or whoever holds the key) is told: its batches
        # are refused for good, and it parks them instead of sending them forever.
        return _revoked(topic, station, envelope, kind, status, refuse)
    if kind in ("gap", "key"):
        if envelope.is_bundle:
            return [refuse("malformed", f"{kind} messages travel alone, not in a bundle",
                           station=station, key_id=envelope.key_id)]
        handle = _gap if kind == "gap" else _key
        return [handle(topic, station, envelope, received_at, refuse, payload)]
    if not envelope.is_bundle:
        return [_batch(topic, station, envelope.body, envelope, None, received_at, refuse,
                       payload)]
    bundle = SignedBundle(topic, envelope.key_id, envelope.signature,
                          wire.bundle_digests(envelope.bodies), received_at)
    return [_batch(topic, station, body, envelope, bundle, received_at, refuse, payload)
            for body in envelope.bodies]


def _revoked(topic: str, station: str, envelope: wire.Envelope, kind: str, status: str,
             refuse) -> list[Outcome]:
    """A verified refusal per batch of a message signed by a key that is no longer valid:
    acknowledged with the reason (naming the key), so the agent parks those batches."""
    if kind != "data":
        return [refuse("revoked-key", _revoked_detail(envelope.key_id, status),
                       station=station, key_id=envelope.key_id)]
    columns = []
    for body in ((envelope.body,) if not envelope.is_bundle else envelope.bodies):
        try:
            columns.append(wire.decode_batch_columns(body))
        except WireError as exc:
            columns.append(exc)
    return _revoked_columns(refuse, station, envelope.key_id, status, columns)


def _revoked_detail(key_id: str, status: str) -> str:
    return (f"key {key_id!r} is {status}: the collector refuses what it signs for good; "
            "enrol a new key (obslink agent enrol with a new token)")


def _revoked_columns(refuse, station: str, key_id: str, status: str,
                     columns: list) -> list[Outcome]:
    detail = _revoked_detail(key_id, status)
    refusals = []
    for batch in columns:
        if isinstance(batch, WireError):
            refusals.append(refuse("revoked-key", detail, station=station, key_id=key_id))
            continue
        same = batch.station == station
        refusals.append(refuse("revoked-key", detail, station=station, key_id=key_id,
                               epoch=batch.epoch if same else None,
                               seq=batch.seq if same else None, verified=same))
    return refusals


def _nothing(_station: str, _ref: bytes) -> None:
    return None


def _batch(topic: str, station: str, body: bytes, envelope: wire.Envelope,
           bundle: SignedBundle | None, received_at: int, refuse, payload: bytes) -> Outcome:
    try:
        batch = wire.decode_batch_columns(body)
    except WireError as exc:
        return refuse("malformed", str(exc), station=station, key_id=envelope.key_id,
                      verified=True)
    if batch.station != station:
        return refuse("wrong-topic", f"batch names station {batch.station!r} but came on "
                      f"the topic of {station!r}", station=station, key_id=envelope.key_id,
                      epoch=batch.epoch, seq=batch.seq, verified=True)
    return AcceptedBatch(batch, topic, envelope.key_id, envelope.signature, body,
                         received_at, bundle, payload)


def _gap(topic: str, station: str, envelope: wire.Envelope, received_at: int, refuse,
         payload: bytes):
    try:
        gap = wire.decode_gap(envelope.body)
    except WireError as exc:
        return refuse("malformed", str(exc), station=station, key_id=envelope.key_id)
    if gap.station != station:
        return refuse("wrong-topic", f"gap report names station {gap.station!r} but came on "
                      f"the topic of {station!r}", station=station, key_id=envelope.key_id)
    return AcceptedGap(gap, topic, envelope.key_id, envelope.signature, received_at, payload)


def _key(topic: str, station: str, envelope: wire.Envelope, received_at: int, refuse,
         payload: bytes):
    try:
        rotation = wire.decode_key_rotation(envelope.body)
        public = Ed25519PublicKey.from_public_bytes(rotation.public_key)
    except (WireError, ValueError) as exc:
        return refuse("malformed", str(exc), station=station, key_id=envelope.key_id)
    if rotation.station != station:
        return refuse("wrong-topic", f"key announcement names station {rotation.station!r} "
                      f"but came on the topic of {station!r}", station=station,
                      key_id=envelope.key_id)
    if key_id(public) != rotation.key_id:
        return refuse("malformed", f"announced key id {rotation.key_id!r} is not the id of "
                      "the announced key", station=station, key_id=envelope.key_id)
    return AcceptedKey(rotation, topic, envelope.key_id, received_at, payload)
