"""Protocol v2's data messages: the compact bodies of a v2 envelope, their contexts resolved
(sent along, or held by the catalog), the signature over topic and their digests checked,
each body turned into the same columns a v1 batch gives (docs/protocol.md, "Version 2").

A message that names a context the collector does not hold cannot be verified; its station
is told (the ack's ``ctx_unknown``) and sends the context along with the next copy.
"""

from __future__ import annotations

from typing import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from obslink import wire
from obslink.errors import WireError
from obslink.server.catalog import AcceptedBatch, SignedBundle
from obslink.wire import compact
from obslink.wire.envelope import MAX_BUNDLE_BATCHES

MAX_CACHED_CONTEXTS = 65_536


class Contexts:
    """v2 batch contexts by (station, reference): those sent along are kept from the moment
    they arrive (a later message of the same group may name one before it is committed;
    each batch carries its context into the catalog), the rest are looked up."""

    def __init__(self, lookup: Callable[[str, bytes], bytes | None]) -> None:
        self.lookup = lookup
        self._known: dict[tuple[str, bytes], bytes] = {}

    def add(self, station: str, context: bytes) -> bytes:
        if len(self._known) >= MAX_CACHED_CONTEXTS:
            self._known.clear()
        ref = compact.context_ref(context)
        self._known[(station, ref)] = context
        return ref

    def get(self, station: str, ref: bytes) -> bytes | None:
        found = self._known.get((station, ref))
        if found is None:
            found = self.lookup(station, ref)
            if found is not None:
                self._known[(station, ref)] = found
        return found


def verify_v2(topic: str, station: str, envelope: wire.EnvelopeV2, keys: dict,
              contexts: Contexts, received_at: int, payload: bytes, refuse, revoked) -> list:
    """Outcomes of a v2 data message whose station has keys: one per body, or one refusal
    for the whole message when it cannot be verified."""
    if not 0 < len(envelope.bodies) <= MAX_BUNDLE_BATCHES:
        return [refuse("malformed", f"a v2 message holds 1-{MAX_BUNDLE_BATCHES} batches, not "
                       f"{len(envelope.bodies)}", station=station)]
    for context in envelope.contexts:
        contexts.add(station, context)
    decoded, items = [], []
    try:
        for body in envelope.bodies:
            data, ref = compact.body_ref(body)
            context = contexts.get(station, ref)
            if context is None:
                return [refuse("unknown-context", f"context {ref.hex()} is not held by this "
                               "collector; the station is asked to send it along",
                               station=station, context_ref=ref)]
            decoded.append(data)
            items.append((context, body))
    except WireError as exc:
        return [refuse("malformed", str(exc), station=station)]
    pairs = wire.digest_pairs(items)
    message = wire.signed_message_v2(topic, pairs)
    candidates = [kid for kid in keys if kid.startswith(envelope.key_prefix)]
    if not candidates:
        return [refuse("unknown-key", f"no key of {station!r} has an id starting "
                       f"{envelope.key_prefix!r}", station=station)]
    key_id = next((kid for kid in candidates if _verifies(keys[kid][0], envelope.signature,
                                                          message)), None)
    if key_id is None:
        return [refuse("bad-signature", "signature does not verify against the station key "
                       "for this topic", station=station, key_id=candidates[0])]
    columns = []
    for data, (context, body) in zip(decoded, items):
        try:
            columns.append(wire.decode_v2_columns(data, context))
        except WireError as exc:
            columns.append(exc)
    if keys[key_id][1] != "active":
        return revoked(key_id, keys[key_id][1], columns)
    bundle = None if len(items) == 1 else SignedBundle(topic, key_id, envelope.signature,
                                                       pairs, received_at)
    outcomes = []
    for batch, (context, body) in zip(columns, items):
        if isinstance(batch, WireError):
            outcomes.append(refuse("malformed", str(batch), station=station, key_id=key_id,
                                   verified=True))
        elif batch.station != station:
            outcomes.append(refuse(
                "wrong-topic", f"batch names station {batch.station!r} but came on the topic "
                f"of {station!r}", station=station, key_id=key_id, epoch=batch.epoch,
                seq=batch.seq, verified=True))
        else:
            outcomes.append(AcceptedBatch(batch, topic, key_id, envelope.signature, body,
                                          received_at, bundle, payload, context))
    return outcomes


def _verifies(raw_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(raw_key).verify(signature, message)
    except Exception:  # InvalidSignature, or a malformed stored key
        return False
    return True
