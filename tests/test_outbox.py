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
