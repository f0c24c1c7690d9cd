"""The directory source with a real outbox: growth, rotation, rewrites, partial lines."""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime, timezone
from functools import partial

from obslink.agent.outbox import Outbox
from obslink.agent.runner import OutboxSink
from obslink.plugins.directory_source import MAX_WINDOW_FACTOR, DirectorySource
from obslink.plugins.formats import AdapterContext
from obslink.plugins.toa5 import TOA5Adapter
from obslink.demo.simulator import KINDS, SimulatedLogger
from obslink.wire import decode_batch


def make_source(tmp_path, **settings):
    outbox = Outbox(tmp_path / "outbox.db", "S1")
    sink = OutboxSink(outbox, 1000, threading.Event())
    source = DirectorySource("logger", {"path": str(tmp_path / "logger"), "pattern": "*.dat*",
                                        **settings},
                             partial(TOA5Adapter, AdapterContext("S1", 0)), sink)
    return source, outbox


def observed(outbox):
    times = []
    for _seq, body in outbox.unsent(10_000, set()):
        times += [r.observed_at for r in decode_batch(body).readings]
    return sorted(times)


def logger(tmp_path):
    return SimulatedLogger("S1", KINDS[1], tmp_path / "logger",
                           datetime(2026, 1, 1, tzinfo=timezone.utc), nan_every=10**9)


def test_growing_file_is_read_once_per_record(tmp_path):
    source, outbox = make_source(tmp_path)
    station = logger(tmp_path)
    for _ in range(3):
        station.write_next()
    assert source.poll() == 9
    assert source.poll() == 0
    station.write_next()
    assert source.poll() == 3
    assert observed(outbox) == sorted(t for t, *_ in station.expected)


def test_rotated_file_is_followed_not_read_again(tmp_path):
    source, outbox = make_source(tmp_path)
    station = logger(tmp_path)
    station.write_next(), station.write_next()
    source.poll()
    rotated = station.path.with_name(station.path.name + ".1")
    os.rename(station.path, rotated)  # the logger's rotation: same inode, new name
    with open(rotated, "a") as out:  # a last record landed before the switch
        out.write(station.next_record()[1])
    station.write_next()  # a new file under the old name, header first
    source.poll()
    assert observed(outbox) == sorted(t for t, *_ in station.expected)
    assert len(observed(outbox)) == 4 * 3


def test_rewritten_file_is_read_again_from_the_start(tmp_path):
    source, outbox = make_source(tmp_path)
    station = logger(tmp_path)
    station.write_next(), station.write_next()
    source.poll()
    station.path.unlink()
    station.write_next()  # a new file (new inode), shorter than the old offset
    source.poll()
    assert len(observed(outbox)) == 3 * 3


def test_partial_last_line_waits_until_the_file_settles(tmp_path):
    source, outbox = make_source(tmp_path, settle_seconds=60)
    station = logger(tmp_path)
    station.write_next()
    with open(station.path, "a") as out:
        out.write('"2026-01-01 00:01:00",1,5.5')  # still being written
    assert source.poll() == 3
    past = time.time() - 120
    os.utime(station.path, (past, past))
    source.poll()
    assert outbox.stats().quarantined == 1  # truncated: too few fields, kept with its reason
    assert "expected 5 fields" in outbox.recent_quarantine()[0]["reason"]


def test_a_record_longer_than_the_read_window_is_read_and_an_endless_one_quarantined(tmp_path):
    source, outbox = make_source(tmp_path, settle_seconds=60, max_read_bytes=256)
    station = logger(tmp_path)
    station.write_next()
    header_and_record = station.path.read_bytes()
    fields = header_and_record.rstrip(b"\r\n").rsplit(b"\n", 1)[1].split(b",")
    fields[2] = b"0" * 1000 + fields[2]  # the same value, over 4 windows long
    long_record = b",".join(fields) + b"\r\n"
    endless = b"x" * (256 * MAX_WINDOW_FACTOR + 100)  # no line end within 16 windows
    station.path.write_bytes(header_and_record + long_record + endless)
    assert source.poll() == 6  # the first record's 3 readings, the long one's 3
    assert outbox.stats().quarantined == 0  # the endless tail waits while the file is fresh
    past = time.time() - 120
    os.utime(station.path, (past, past))
    source.poll()
    assert outbox.stats().quarantined >= 1  # once settled, quarantined, never a stall
    assert outbox.positions("logger")[station.path.name].offset == station.path.stat().st_size


def test_missing_directory_is_waited_for(tmp_path):
    source, _outbox = make_source(tmp_path)
    assert source.poll() == 0
