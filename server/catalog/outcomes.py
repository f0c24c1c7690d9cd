"""What the collector hands the catalog and what the catalog hands back: verified batches,
gap reports, key announcements, refusals, the QC columns to store, counts for reports.

Every backend takes and returns these types; nothing here knows how they are stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from obslink import wire
from obslink.wire import BatchColumns


@dataclass(frozen=True)
class Station:
    id: str
    network: str
    name: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    interval_seconds: int | None = None


@dataclass(frozen=True, eq=False)  # compared by identity: one per message
class SignedBundle:
    """Batches a station signed together: one signature over the topic and the SHA-256
    digests of their bodies (docs/protocol.md)."""

    topic: str
    key_id: str
    signature: bytes
    # the bodies' digests, concatenated in the signed order (v2: each body's context's
    # digest, then the body's)
    digests: bytes
    received_at: int  # µs


@dataclass(frozen=True)
class AcceptedBatch:
    batch: BatchColumns
    topic: str
    key_id: str
    signature: bytes  # the batch's own signature, or its bundle's
    body: bytes
    received_at: int  # µs
    bundle: SignedBundle | None = None
    payload: bytes = b""  # the MQTT message as received (a bundle's batches share it)
    context: bytes | None = None  # a v2 body's context (docs/protocol.md, "Version 2")


@dataclass(frozen=True)
class AcceptedGap:
    gap: wire.GapReport
    topic: str
    key_id: str
    signature: bytes
    received_at: int  # µs
    payload: bytes = b""


@dataclass(frozen=True)
class AcceptedKey:
    """A station's next key, announced under the signature of a key it holds now."""

    rotation: wire.KeyRotation
    topic: str
    signer: str  # the key id that signed the announcement
    received_at: int
    payload: bytes = b""


@dataclass(frozen=True)
class Refusal:
    topic: str
    reason: str  # a short code: bad-signature, unknown-station, unknown-key, malformed, …
    detail: str
    payload: bytes
    received_at: int
    station: str | None = None
    key_id: str | None = None
    epoch: str | None = None
    seq: int | None = None
    # True when the station's signature checked out, so the refusal can be acknowledged to
    # it; an unverifiable message gets no ack (a forger must not park a real batch).
    verified: bool = False
    # a v2 message named a context the collector does not hold: the station is asked to
    # send it along again (its ack's ctx_unknown), nothing is parked
    context_ref: bytes | None = None


@dataclass(frozen=True)
class QCCounts:
    flags: dict[int, int]  # qc flag -> observations
    checks: dict[str, tuple[int, int]]  # check name -> (observations it ran on, flagged)
    origins: dict[str, int]  # where QC ran (edge, centre, edge+centre, none) -> batches


@dataclass(frozen=True)
class BatchQC:
    """The QC columns stored with a batch's readings: flags, and masks of the checks that
    ran and failed over the check names ``checks``; ``origin`` says where QC ran (edge,
    centre, edge+centre, none)."""

    qc: Sequence[int]
    ran: Sequence[int]
    failed: Sequence[int]
    checks: Sequence[str]
    origin: str

    @classmethod
    def as_sent(cls, batch: BatchColumns) -> "BatchQC":
        """The columns as the station sent them, checked by nobody else."""
        return cls(batch.qc, batch.qc_ran, batch.qc_failed, batch.qc_checks,
                   "edge" if batch.qc_checks else "none")


@dataclass(frozen=True)
class CentreChecked:
    """What the collector's centre QC made of the new batches of a group: per batch its
    columns, and the checks' history to store in the same transaction."""

    columns: list[BatchQC]
    state: list[tuple[str, str, str]]  # (check, series, JSON)


@dataclass(frozen=True)
class BrokerAccount:
    username: str
    password: str
    # whether the last `collector broker-config` wrote this account as it is now
    broker_knows_it: bool

    def note(self) -> str:
        """What an operator must do before the station can log in, if anything."""
        if self.broker_knows_it:
            return ""
        return (f"the broker does not know account {self.username} yet: run `obslink "
                "collector broker-config` and reload the broker (SIGHUP) before the station "
                "can connect; until then its agent keeps its readings and retries")


def declared_floors(accepted: list[AcceptedBatch]) -> dict[tuple[str, str], int]:
    """(station, epoch) -> the highest replay floor the batches declare (docs/protocol.md,
    "Replays"): the one rule by which a floor rises, for the collector's window and for
    what the catalog stores with the batches."""
    floors: dict[tuple[str, str], int] = {}
    for item in accepted:
        batch = item.batch
        if batch.floor is not None:
            key = (batch.station, batch.epoch)
            floors[key] = max(batch.floor, floors.get(key, 0))
    return floors
