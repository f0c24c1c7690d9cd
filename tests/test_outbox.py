"""The outbox: atomic ingest, durable sequence numbers, acks, epochs."""

from __future__ import annotations

import hashlib

import pytest

from obslink.agent.outbox import Outbox, OutboxMissingError
from obslink.plugins.formats import Decoded, Quarantined
from obslink.plugins.sources import ChunkOrigin, SourcePosition
from obslink.plugins.toa5 import TOA5Adapter
from obslink.readings import Reading
from obslink.wire import Ack, decode_batch


def ingest(outbox, n_readings, offset=0, max_batch=1000, quarantined=()):
    readings = [Reading(i, "air_temperature", float(i), "degC", "T") for i in range(n_readings)]
    origin = ChunkOrigin("logger", "a.dat", offset, offset + 10, hashlib.sha256(b"x").digest())
    return outbox.ingest(origin, Decoded(readings, list(quarantined), 10),
                         SourcePosition(offset + 10, "1:2", {"line": 3}), TOA5Adapter(),
                         max_batch)


def test_readings_position_and_quarantine_commit_together(tmp_path):
    outbox = Outbox(tmp_path / "o.db", "S1")
    bad = Quarantined(5, 2, "line 2: broken", b"junk\n")
    assert ingest(outbox, 2500, max_batch=1000, quarantined=[bad]) == [1, 2, 3]
    assert outbox.positions("logger") == {"a.dat": SourcePosition(10, "1:2", {"line": 3})}
    stats = outbox.stats()
    assert (stats.batches, stats.readings, stats.quarantined) == (3, 2500, 1)
    batch = decode_batch(outbox.unsent(10, set())[0][1])
    assert batch.station == "S1" and batch.seq == 1 and len(batch.readings) == 1000
    assert batch.source["sha256"] == hashlib.sha256(b"x").digest()
    assert batch.adapter == "toa5"


def test_failed_ingest_leaves_nothing_behind(tmp_path):
    outbox = Outbox(tmp_path / "o.db", "S1")
    with pytest.raises(TypeError):
        outbox.ingest(ChunkOrigin("logger", "a.dat", 0, 10, b""),
                      Decoded([Reading(1, "t", 1.0, "C", "T")], [], 10),
                      SourcePosition(10, "1:2", {"unserialisable": object()}),
                      TOA5Adapter(), 100)
    assert outbox.stats().batches == 0 and outbox.positions("logger") == {}
    assert ingest(outbox, 1) == [1]  # the sequence number was not used up


def test_sequence_numbers_survive_reopening_and_acks(tmp_path):
    outbox = Outbox(tmp_path / "o.db", "S1")
    ingest(outbox, 1), ingest(outbox, 1)
    epoch = outbox.epoch
    assert outbox.apply_ack(Ack(epoch, [1, 2])) == (2, 0)
    outbox.close()
    reopened = Outbox(tmp_path / "o.db", "S1")
    assert reopened.epoch == epoch
    assert ingest(reopened, 1) == [3]  # never reused, even after every batch was acked


def test_each_batch_declares_the_lowest_sequence_number_still_unacknowledged(tmp_path):
    outbox = Outbox(tmp_path / "o.db", "S1")

    def floors():
        return [decode_batch(body).floor for _, body in outbox.unsent(10, set())]

    ingest(outbox, 1), ingest(outbox, 1)
    assert floors() == [1, 1]  # the first batch is its own floor
    outbox.apply_ack(Ack(outbox.epoch, [1]))
    ingest(outbox, 1)
    assert floors() == [1, 2]  # 2 is still waiting: the third batch's window starts there
    outbox.apply_ack(Ack(outbox.epoch, [2, 3]))
    ingest(outbox, 1)
    assert floors() == [4]
    outbox.apply_ack(Ack(outbox.epoch, [], [(4, "malformed: x")]))
    ingest(outbox, 1)
    assert floors() == [5]  # a parked batch is never sent again: it does not hold it back


def test_a_new_outbox_gets_a_new_epoch(tmp_path):
    assert Outbox(tmp_path / "a.db", "S1").epoch != Outbox(tmp_path / "b.db", "S1").epoch


def test_refused_batches_are_parked_and_acks_of_another_epoch_ignored(tmp_path):
    outbox = Outbox(tmp_path / "o.db", "S1")
    ingest(outbox, 1), ingest(outbox, 1)
    assert outbox.apply_ack(Ack("someone-else", [1, 2])) == (0, 0)
    assert outbox.apply_ack(Ack(outbox.epoch, [], [(2, "malformed: x")])) == (0, 1)
    assert [seq for seq, _ in outbox.unsent(10, set())] == [1]
    assert outbox.unsent(10, {1}) == []
    assert outbox.refused()[0]["reason"] == "malformed: x"


def test_status_of_a_missing_outbox_says_what_to_do(tmp_path):
    with pytest.raises(OutboxMissingError, match="obslink agent run"):
        Outbox(tmp_path / "none.db", "S1", create=False)


# --- lanes, caps, gaps, clock jumps, recovery --------------------------------------------------

from obslink.agent.outbox import OutboxLimits  # noqa: E402


def ingest_at(outbox, observed_at, count=10, limits=None):
    readings = [Reading(observed_at + i, "air_temperature", 1.5, "degC", "T")
                for i in range(count)]
    return outbox.ingest(ChunkOrigin("logger", "a.dat", 0, 10, b""), Decoded(readings, [], 10),
                         SourcePosition(10, "1:2", {}), TOA5Adapter(), 1000, limits=limits)


def test_live_lane_is_newest_first_and_backlog_oldest_first(tmp_path):
    outbox = Outbox(tmp_path / "o.db", "S1")
    for observed in (100, 200, 300, 5000, 6000):
        ingest_at(outbox, observed)
    live = outbox.lane(1000, 10, set(), newest_first=True)
    backlog = outbox.lane(1000, 10, {2}, newest_first=False)
    assert [row[0] for row in live] == [5, 4]
    assert [row[0] for row in backlog] == [1, 3]  # 2 is in flight
    assert outbox.lanes(1000)["live"]["readings"] == 20


def sqlite_steps(conn, work) -> int:
    """SQLite virtual-machine instructions ``work`` runs on ``conn``, in hundreds."""
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    conn.set_progress_handler(count, 100)
    try:
        work()
    finally:
        conn.set_progress_handler(None, 100)
    return steps[0]


def test_taking_from_the_backlog_does_not_read_the_whole_backlog(tmp_path):
    """A drain takes a bundle at a time: each must cost the same whatever still waits,
    or draining a long outage's backlog is quadratic in it."""
    outbox = Outbox(tmp_path / "o.db", "S1", synchronous="OFF")
    costs = []
    for waiting in (100, 2000):
        while outbox.stats().batches < waiting:
            ingest_at(outbox, outbox.stats().next_seq * 1000, count=1)
        taken = outbox.lane(10**12, 32, {1, 2, 3}, newest_first=False)
        assert [row[0] for row in taken] == list(range(4, 36))
        costs.append(sqlite_steps(outbox.conn, lambda: outbox.lane(
            10**12, 32, {1, 2, 3}, newest_first=False)))
    assert costs[1] <= costs[0] * 1.5, costs


@pytest.mark.parametrize("policy,evicted", [("oldest", [1, 2, 3]), ("thin", [1, 2, 4])])
def test_a_full_outbox_evicts_by_policy_and_records_gaps(tmp_path, policy, evicted):
    outbox = Outbox(tmp_path / "o.db", "S1")
    for n in range(8):
        ingest_at(outbox, n * 1000)
    size = outbox.lanes(0)["live"]["bytes"] / 8
    limits = OutboxLimits(max_bytes=int(size * 6.5), policy=policy)  # 9 batches: 3 must go
    ingest_at(outbox, 9000, limits=limits)
    kept = {row[0] for row in outbox.lane(None, 100, set(), newest_first=False)}
    assert kept == set(range(1, 10)) - set(evicted)
    gaps = outbox.unreported_gaps()
    assert sum(g.batches for g in gaps) == 3 and sum(g.readings for g in gaps) == 30
    assert {g.reason for g in gaps} == {"size-cap"}
    assert 9 in kept  # the newest is never evicted
    outbox.apply_ack(Ack(outbox.epoch, [], [], [g.id for g in gaps]))
    assert outbox.unreported_gaps() == [] and outbox.evictions()["readings"] == 30


def test_below_the_disk_watermark_the_outbox_stops_growing(tmp_path):
    disk = {"free": 1 << 40}
    outbox = Outbox(tmp_path / "o.db", "S1", free_bytes=lambda path: disk["free"])
    limits = OutboxLimits(min_free_bytes=1 << 20)
    for n in range(300):
        ingest_at(outbox, n * 1000, limits=limits)
    assert outbox.unreported_gaps() == []  # plenty of room: nothing evicted
    disk["free"] = 1000  # something else filled the disk
    pages = lambda: outbox.conn.execute("PRAGMA page_count").fetchone()[0]  # noqa: E731
    for n in range(300, 1500):
        ingest_at(outbox, n * 1000, limits=limits)
        if n == 400:
            pages_then = pages()
    gaps = outbox.unreported_gaps()
    assert gaps and {g.reason for g in gaps} == {"disk-full"}
    assert pages() <= pages_then + 2  # freed pages took the new batches: the file stayed
    kept = [row[0] for row in outbox.lane(None, 2000, set(), newest_first=False)]
    assert kept[-1] == 1500 and len(kept) + sum(g.batches for g in gaps) == 1500


def test_retention_evicts_what_waited_too_long(tmp_path, monkeypatch):
    import obslink.agent.outbox as module

    outbox = Outbox(tmp_path / "o.db", "S1")
    clock = [1_000_000_000_000]
    monkeypatch.setattr(module, "now_us", lambda: clock[0])
    ingest_at(outbox, 1)
    clock[0] += 3600 * 1_000_000
    ingest_at(outbox, 2, limits=OutboxLimits(max_age_s=1800))
    assert [g.reason for g in outbox.unreported_gaps()] == ["retention"]
    assert [row[0] for row in outbox.lane(None, 10, set(), False)] == [2]


def test_a_clock_jump_neither_reorders_nor_breaks_the_outbox(tmp_path, monkeypatch):
    import obslink.agent.outbox as module

    outbox = Outbox(tmp_path / "o.db", "S1")
    times = iter([2_000_000_000_000_000, 1_000_000_000_000_000, 3_000_000_000_000_000])
    monkeypatch.setattr(module, "now_us", lambda: next(times))
    seqs = [ingest_at(outbox, n)[0] for n in range(3)]
    assert seqs == [1, 2, 3]
    assert [decode_batch(body).seq for _s, body in outbox.unsent(10, set())] == [1, 2, 3]


def test_a_damaged_outbox_names_itself_and_the_recovery(tmp_path):
    from obslink.agent.outbox import OutboxDamagedError

    path = tmp_path / "o.db"
    path.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(OutboxDamagedError, match=f"{path}.*obslink agent recover"):
        Outbox(path, "S1")


def test_recovery_keeps_every_readable_batch(tmp_path):
    from obslink.agent.recover import recover_outbox

    path = tmp_path / "o.db"
    outbox = Outbox(path, "S1", synchronous="FULL")
    for n in range(300):
        ingest_at(outbox, n * 1000, count=20)
    epoch = outbox.epoch
    originals = {seq: body for seq, body in outbox.unsent(1000, set())}
    outbox.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    outbox.close()
    data = bytearray(path.read_bytes())
    page = 4096
    middle = len(data) // page // 2 * page
    data[middle:middle + page] = b"\xff" * page  # one page of the batches table destroyed
    path.write_bytes(bytes(data))

    result = recover_outbox(path, "S1")
    recovered = Outbox(path, "S1")
    kept = {seq: body for seq, body in recovered.unsent(1000, set())}
    assert recovered.epoch == epoch == result.epoch
    assert all(originals[seq] == body for seq, body in kept.items())
    assert 300 - 20 <= len(kept) < 300, result.unreadable  # one page's rows at most
    assert result.moved_to.exists() and result.batches == len(kept)
    assert ingest_at(recovered, 10**9) == [301]  # numbering goes on after the last one


def test_a_value_that_is_not_finite_is_sent_as_a_flagged_missing_reading(tmp_path):
    """An adapter that lets NaN or infinity through would have its batches refused by the
    collector (the protocol never carries them); the sink makes them missing readings."""
    import threading

    from obslink.agent.runner import OutboxSink
    from obslink.readings import QC_MISSING

    outbox = Outbox(tmp_path / "o.db", "S1")
    sink = OutboxSink(outbox, 100, threading.Event())
    readings = [Reading(0, "air_temperature", value, "degC", "T", flag)
                for value, flag in ((1.5, None), (float("nan"), None), (float("-inf"), "E"))]
    origin = ChunkOrigin("logger", "a.dat", 0, 10, hashlib.sha256(b"x").digest())
    sink.commit(origin, Decoded(readings, [], 10), SourcePosition(10, "", {}), TOA5Adapter())
    sent = decode_batch(outbox.unsent(10, set())[0][1]).readings
    assert [(r.value, r.source_flag) for r in sent] == [(1.5, None), (None, "NAN"), (None, "E")]
    assert [r.qc for r in sent][1:] == [QC_MISSING, QC_MISSING]


def test_the_byte_cap_holds_to_within_one_batch_when_a_read_makes_several(tmp_path):
    """A day's file read at once after an outage makes several batches in one commit: all
    but the newest may go, so the outbox never holds more than the cap and one batch."""
    outbox = Outbox(tmp_path / "o.db", "S1")
    readings = [Reading(i * 60_000_000, "air_temperature", 1.5, "degC", "T")
                for i in range(4000)]
    created = outbox.ingest(ChunkOrigin("logger", "a.dat", 0, 10, b""),
                            Decoded(readings, [], 10), SourcePosition(10, "1:2", {}),
                            TOA5Adapter(), 500, limits=OutboxLimits(max_bytes=20_000))
    with outbox.reading() as conn:
        held, newest = conn.execute("SELECT sum(bytes), max(bytes) FROM batches").fetchone()
        kept = [row[0] for row in conn.execute("SELECT seq FROM batches ORDER BY seq")]
    assert len(created) == 8 and created[-1] in kept
    assert held <= 20_000 + newest
    gaps = outbox.evictions()
    assert gaps["readings"] == 4000 - outbox.stats().readings  # every eviction reported
