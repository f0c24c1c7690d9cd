"""Replay windows, the one place they live (docs/protocol.md, "Replays").

Each station outbox (station, epoch) declares in its batches a floor: the lowest sequence
number it could still send. A batch below it, or one its gap reports say was evicted, is a
late copy or a replay and is refused. The floors a group raises are computed here
(``outcomes.declared_floors``) and stored by the catalog in the group's transaction.

The window is judged inside the catalog's write transaction (``Catalog.stage(screen=…)``)
from the floors and gap reports the catalog holds then, never from what this process
remembers: collector workers sharing one catalog each see the floors the others raised
(a worker that judged by its own cache took a replay for a redelivery, or stored it).
"""

from __future__ import annotations

from obslink.server.catalog import AcceptedBatch, Catalog, Refusal


class ReplayWindow:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.late_copies = 0  # copies of stored batches below their window: refused

    def screen(self, accepted: list[AcceptedBatch],
               refusals: list[Refusal]) -> list[AcceptedBatch]:
        """Batches at or above their station's floor go on to the commit (a duplicate there
        is a redelivery: a lost ack; it is acked again), unless the station reported them
        evicted. Below the floor the station no longer holds the batch: a copy is a late
        one (a retry still in flight when the first copy's ack arrived) or a replay. Both,
        and a copy of an evicted batch, are refused as replays, without an answer: the
        station does not hold them."""
        outboxes = {(item.batch.station, item.batch.epoch) for item in accepted}
        # read in the caller's write transaction: no other worker moves them meanwhile
        floors = self.catalog.replay_floors(outboxes)
        evictions = self.catalog.evicted(outboxes)
        kept, below = [], []
        for item in accepted:
            batch = item.batch
            key = (batch.station, batch.epoch)
            evicted = next((run for run in evictions.get(key, ())
                            if run[0] <= batch.seq <= run[1]), None)
            if evicted:
                refusals.append(_replay(item, f"batch {batch.epoch}/{batch.seq} was evicted "
                                f"by the station's outbox (gap report {evicted[2]}, "
                                f"{evicted[3]}): the station holds no copy, so this one was "
                                "captured or replayed; not stored"))
            elif batch.seq >= floors.get(key, 0):
                kept.append(item)
            else:
                below.append(item)
        if not below:
            return kept
        stored = self.catalog.commit_times(below)
        for item in below:
            batch = item.batch
            floor = floors[(batch.station, batch.epoch)]
            at = stored.get((batch.station, batch.epoch, batch.seq))
            if at is not None:
                self.late_copies += 1
                refusals.append(_replay(
                    item, f"a copy of batch {batch.epoch}/{batch.seq}, stored at {at}, arrived "
                    f"below the station's replay window (the station had every batch before "
                    f"{floor} acknowledged, evicted or parked): a retry still on its way, or "
                    "a captured copy; not stored again"))
            else:
                refusals.append(_replay(
                    item, f"batch {batch.epoch}/{batch.seq} is below the station's replay "
                    f"window (the station had every batch before {floor} acknowledged, "
                    "evicted or parked) and was never stored; not stored"))
        return kept


def _replay(item: AcceptedBatch, detail: str) -> Refusal:
    batch = item.batch
    return Refusal(item.topic, "replay", detail, item.payload, item.received_at,
                   station=batch.station, key_id=item.key_id, epoch=batch.epoch,
                   seq=batch.seq)
