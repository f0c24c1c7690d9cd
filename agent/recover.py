"""``obslink agent recover``: rebuild a damaged outbox from whatever of it can still be read.

The damaged file is read row by row (a broken page costs the rows on it, not the table), the
readable batches, source positions, QC history, quarantined records and gaps go into a new
outbox under the same epoch, and the damaged file is moved aside, never deleted.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from obslink.agent.outbox import Outbox
from obslink.errors import StorageError, WireError
from obslink.readings import format_utc, now_us
from obslink.wire import decode_batch

log = logging.getLogger(__name__)

PROBE_LIMIT = 10_000_000  # sequence numbers probed one by one, at most
TABLES = {  # table -> (columns, key column)
    "source_positions": ('source, stream, identity, "offset", state, updated_at', None),
    "qc_state": ("check_name, series, state", None),
    "quarantine": ("id, source, stream, position, line, reason, raw, at", "id"),
    "gaps": ("id, first_seq, last_seq, batches, readings, first_observed, last_observed, "
             "reason, at, reported_at", "id"),
}


@dataclass
class Recovery:
    damaged: Path
    moved_to: Path | None = None
    epoch: str | None = None
    batches: int = 0
    readings: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)


def recover_outbox(path: Path, station: str, synchronous: str = "FULL") -> Recovery:
    path = Path(path)
    if not path.exists():
        raise StorageError(f"no outbox at {path}; nothing to recover")
    result = Recovery(path)
    source = _open_read_only(path, result)
    batches = _read_batches(source, result) if source else []
    epoch = _meta(source, "epoch", result) if source else None
    for _seq, body, *_ in batches:  # the epoch is inside every signed batch body too
        if epoch:
            break
        try:
            epoch = decode_batch(body).epoch
        except WireError:
            continue
    tables = {name: _read_table(source, name, columns, key, result)
              for name, (columns, key) in TABLES.items()} if source else {}
    next_seq = _meta(source, "next_seq", result) if source else None
    if source:
        source.close()

    stamp = format_utc(now_us()).replace(":", "")
    result.moved_to = path.with_name(f"{path.name}.damaged-{stamp}")
    fresh = path.with_name(f"{path.name}.recovering")
    for leftover in (fresh, Path(f"{fresh}-wal"), Path(f"{fresh}-shm")):
        leftover.unlink(missing_ok=True)
    outbox = Outbox(fresh, station, synchronous)
    with outbox.transaction() as conn:
        if epoch:
            conn.execute("UPDATE meta SET value = ? WHERE key = 'epoch'", (epoch,))
        highest = max((row[0] for row in batches), default=0)
        conn.execute("UPDATE meta SET value = ? WHERE key = 'next_seq'",
                     (str(max(highest + 1, int(next_seq or 1))),))
        conn.executemany(
            "INSERT INTO batches (seq, created_at, body, readings, first_observed, "
            "last_observed, source, refused_reason, refused_at, bytes) "
            "VALUES (?,?,?,?,?,?,?,?,?,?)", batches)
        for name, rows in tables.items():
            columns = TABLES[name][0]
            conn.executemany(f"INSERT INTO {name} ({columns}) VALUES "
                             f"({','.join('?' * len(columns.split(',')))})", rows)
            result.rows[name] = len(rows)
    result.epoch = outbox.epoch if not epoch else epoch
    outbox.close()
    result.batches = len(batches)
    result.readings = sum(row[3] for row in batches)

    for suffix in ("", "-wal", "-shm"):
        damaged = Path(f"{path}{suffix}")
        if damaged.exists():
            shutil.move(damaged, f"{result.moved_to}{suffix}")
    os.replace(fresh, path)
    for suffix in ("-wal", "-shm"):
        Path(f"{fresh}{suffix}").unlink(missing_ok=True)
    return result


def _open_read_only(path: Path, result: Recovery) -> sqlite3.Connection | None:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.DatabaseError as exc:
        result.unreadable.append(f"the whole file ({exc})")
        return None


def _meta(conn, key: str, result: Recovery) -> str | None:
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None
    except sqlite3.DatabaseError as exc:
        result.unreadable.append(f"meta {key} ({exc})")
        return None


BATCH_COLUMNS = ("seq, created_at, body, readings, first_observed, last_observed, source, "
                 "refused_reason, refused_at, length(body)")


def _read_batches(conn, result: Recovery) -> list[tuple]:
    """Every readable batch: a scan while it works, then one sequence number at a time."""
    rows, last = [], 0
    try:
        for row in conn.execute(f"SELECT {BATCH_COLUMNS} FROM batches ORDER BY seq"):
            rows.append(row)
            last = row[0]
        return rows
    except sqlite3.DatabaseError as exc:
        log.warning("batches after seq %d cannot be scanned (%s); probing one by one", last,
                    exc)
    highest = None
    for query in ("SELECT max(seq) FROM batches", "SELECT value FROM meta WHERE key = "
                  "'next_seq'"):
        try:
            highest = int(conn.execute(query).fetchone()[0] or 0)
            break
        except (sqlite3.DatabaseError, TypeError, ValueError):
            continue
    if highest is None:
        result.unreadable.append(f"batches after seq {last} (their number is unknown)")
        return rows
    lost = 0
    for seq in range(last + 1, min(highest, last + PROBE_LIMIT) + 1):
        try:
            row = conn.execute(f"SELECT {BATCH_COLUMNS} FROM batches WHERE seq = ?",
                               (seq,)).fetchone()
        except sqlite3.DatabaseError:
            lost += 1
            continue
        if row is not None:
            rows.append(row)
    if lost:
        result.unreadable.append(f"{lost} batch rows between seq {last + 1} and {highest}")
    return rows


def _read_table(conn, name: str, columns: str, key: str | None,
                result: Recovery) -> list[tuple]:
    rows = []
    try:
        for row in conn.execute(f"SELECT {columns} FROM {name}"):
            rows.append(row)
    except sqlite3.DatabaseError as exc:
        result.unreadable.append(f"{name} after {len(rows)} rows ({exc})")
    return rows
