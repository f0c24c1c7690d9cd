"""The acknowledgement a collector publishes on a station's ack topic (docs/protocol.md,
"Acknowledgement"). Unsigned: an agent trusts it only to stop re-sending."""

from __future__ import annotations

from dataclasses import dataclass, field

import msgpack

from obslink.errors import WireError
from obslink.wire.checks import is_int

ACK_VERSION = 1


@dataclass
class Ack:
    """What the collector committed (or refused) of one station's batches of one epoch."""

    epoch: str
    committed: list[int] = field(default_factory=list)
    # (seq, reason) or (seq, reason, key id): with the key that signed what was refused,
    # a station parks only what it signed itself with that key
    refused: list[tuple] = field(default_factory=list)
    gaps: list[int] = field(default_factory=list)  # ids of gap reports now in the catalog
    now: int | None = None  # the collector's clock (µs) when it sent the ack
    bundles: int | None = None  # the most batches the collector takes in one bundle
    keys: list[str] = field(default_factory=list)  # ids of announced keys now registered
    protocol: int | None = None  # the highest data protocol the collector takes (2: v2)
    # v2 contexts (their 8-byte references) the catalog now holds, and those a message
    # named that the collector does not know (the agent sends them along again)
    contexts: list[bytes] = field(default_factory=list)
    contexts_unknown: list[bytes] = field(default_factory=list)


def encode_ack(ack: Ack) -> bytes:
    body = {"v": ACK_VERSION, "epoch": ack.epoch, "committed": ack.committed,
            "refused": [list(item) for item in ack.refused]}
    if ack.gaps:
        body["gaps"] = ack.gaps
    if ack.now is not None:
        body["now"] = ack.now
    if ack.bundles:
        body["bundles"] = ack.bundles
    if ack.keys:
        body["keys"] = ack.keys
    if ack.protocol:
        body["protocol"] = ack.protocol
    if ack.contexts:
        body["ctx"] = ack.contexts
    if ack.contexts_unknown:
        body["ctx_unknown"] = ack.contexts_unknown
    return msgpack.packb(body, use_bin_type=True)


def decode_ack(payload: bytes) -> Ack:
    try:
        data = msgpack.unpackb(payload, raw=False)
        if not isinstance(data, dict) or data.get("v") != ACK_VERSION:
            raise WireError(f"not an obslink v{ACK_VERSION} ack")
        committed = [int(s) for s in data["committed"]]
        refused = [(int(item[0]), str(item[1])) + ((str(item[2]),) if len(item) > 2 else ())
                   for item in data["refused"]]
        gaps = [int(g) for g in data.get("gaps", [])]
        now, bundles = data.get("now"), data.get("bundles")
        keys = [str(k) for k in data.get("keys", [])]
        protocol = data.get("protocol")
        return Ack(str(data["epoch"]), committed, refused, gaps,
                   int(now) if is_int(now) else None,
                   bundles if is_int(bundles) and bundles > 1 else None, keys,
                   protocol if is_int(protocol) else None,
                   [bytes(r) for r in data.get("ctx", [])],
                   [bytes(r) for r in data.get("ctx_unknown", [])])
    except WireError:
        raise
    except Exception as exc:
        raise WireError(f"malformed ack ({type(exc).__name__}: {exc})") from None
