"""The gap report: batches a station's outbox evicted, signed inside an envelope on the
station's gap topic (docs/protocol.md, "Gap report")."""

from __future__ import annotations

from dataclasses import dataclass

import msgpack

from obslink.errors import WireError
from obslink.wire.checks import expect, is_int, unpack_kind
from obslink.wire.topics import check_station_id

GAP_VERSION = 1


@dataclass
class GapReport:
    """Batches a station's outbox evicted (a cap was reached): data the centre will never
    get, reported so that the catalog shows the hole and why."""

    station: str
    epoch: str
    id: int  # the outbox's gap id; (station, epoch, id) is the report's identity
    first_seq: int
    last_seq: int
    batches: int
    readings: int
    first_observed: int | None  # µs, UTC
    last_observed: int | None
    reason: str  # size-cap, retention, disk-full
    at: int  # µs, when the outbox evicted them


GAP_FIELDS = ("station", "epoch", "id", "first_seq", "last_seq", "batches", "readings",
              "first_observed", "last_observed", "reason", "at")


def encode_gap(gap: GapReport) -> bytes:
    body = {"v": GAP_VERSION, "kind": "gap"}
    body.update({name: getattr(gap, name) for name in GAP_FIELDS})
    return msgpack.packb(body, use_bin_type=True)


def decode_gap(body: bytes) -> GapReport:
    data = unpack_kind(body, "gap", GAP_VERSION, "gap report")
    try:
        gap = GapReport(**{name: data[name] for name in GAP_FIELDS})
    except KeyError as exc:
        raise WireError(f"gap report lacks {exc}") from None
    check_station_id(gap.station)
    expect(isinstance(gap.epoch, str) and 0 < len(gap.epoch) <= 64, "epoch")
    expect(all(is_int(getattr(gap, name)) and getattr(gap, name) >= 0
               for name in ("id", "first_seq", "last_seq", "batches", "readings")), "counts")
    expect(all(value is None or is_int(value) for value in
               (gap.first_observed, gap.last_observed)) and is_int(gap.at), "times")
    expect(isinstance(gap.reason, str) and 0 < len(gap.reason) <= 64, "reason")
    return gap
