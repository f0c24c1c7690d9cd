"""The agent's outbox: readings wait here, durable, until the collector acknowledges them.

Readings, quarantined records and the source position are written in one transaction, so a
kill -9 or a power cut neither loses nor repeats a record. Batches are encoded at ingest and
keep their sequence number forever; ``epoch`` (random, made with the outbox) keeps the batch
identity unique even when a gateway's storage is wiped and its key kept.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from obslink.errors import StorageError
from obslink.plugins.formats import Decoded, FormatAdapter
from obslink.plugins.qc_runner import QCColumns
from obslink.plugins.sources import ChunkOrigin, SourcePosition
from obslink.readings import MAX_TIME_US, now_us
from obslink.sqlite_store import apply_migrations, open_database, transaction
from obslink.wire import Ack, Batch, encode_batch

log = logging.getLogger(__name__)

MIGRATIONS = [
    ("create core tables", """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE batches (
            seq INTEGER PRIMARY KEY,
            created_at INTEGER NOT NULL,
            body BLOB NOT NULL,
            readings INTEGER NOT NULL,
            first_observed INTEGER,
            last_observed INTEGER,
            source TEXT NOT NULL,
            refused_reason TEXT,
            refused_at INTEGER
        );
        CREATE TABLE source_positions (
            source TEXT NOT NULL,
            stream TEXT NOT NULL,
            identity TEXT NOT NULL,
            "offset" INTEGER NOT NULL,
            state TEXT NOT NULL,
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (source, stream)
        );
        CREATE TABLE quarantine (
            id INTEGER PRIMARY KEY,
            source TEXT NOT NULL,
            stream TEXT NOT NULL,
            position INTEGER NOT NULL,
            line INTEGER,
            reason TEXT NOT NULL,
            raw BLOB NOT NULL,
            at INTEGER NOT NULL
        );
    """),
    ("QC history of the step and persistence checks", """
        CREATE TABLE qc_state (
            check_name TEXT NOT NULL,
            series TEXT NOT NULL,
            state TEXT NOT NULL,
            PRIMARY KEY (check_name, series)
        );
    """),
    ("lanes, caps and gaps: batch sizes, evictions, the acknowledged rate", """
        ALTER TABLE batches ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
        UPDATE batches SET bytes = length(body);
        CREATE INDEX batches_lane ON batches (refused_reason, last_observed);
        CREATE TABLE gaps (
            id INTEGER PRIMARY KEY,
            first_seq INTEGER NOT NULL,
            last_seq INTEGER NOT NULL,
            batches INTEGER NOT NULL,
            readings INTEGER NOT NULL,
            first_observed INTEGER,
            last_observed INTEGER,
            reason TEXT NOT NULL,
            at INTEGER NOT NULL,
            reported_at INTEGER
        );
        CREATE TABLE acked (at INTEGER NOT NULL, readings INTEGER NOT NULL)
    """),
]


class OutboxMissingError(StorageError):
    pass


class OutboxDamagedError(StorageError):
    """The outbox file is not a readable SQLite database (or its schema is broken)."""


EVICTION_POLICIES = ("oldest", "thin")


@dataclass(frozen=True)
class OutboxLimits:
    """Caps on what the outbox holds, and what goes first when one is reached."""

    max_bytes: int | None = None  # encoded batch bytes waiting, at most
    max_age_s: int | None = None  # a batch waiting longer than this is evicted
    policy: str = "oldest"  # "oldest": oldest backlog first; "thin": every other batch of
    # the older half of the backlog, so an outage keeps coverage at half resolution
    # Free disk space below which the outbox stops growing: it evicts backlog (a
    # "disk-full" gap) and reuses the pages, so a filling disk never stops the agent.
    min_free_bytes: int | None = None


@dataclass(frozen=True)
class Gap:
    """Batches the outbox evicted: what the centre will never get, and why."""

    id: int
    first_seq: int
    last_seq: int
    batches: int
    readings: int
    first_observed: int | None
    last_observed: int | None
    reason: str
    at: int


@dataclass(frozen=True)
class OutboxStats:
    batches: int
    readings: int
    oldest_created_at: int | None
    refused: int
    quarantined: int
    last_ack_at: int | None
    epoch: str
    next_seq: int


# The write-ahead log is checkpointed every WAL_CHECKPOINT_PAGES pages and cut back to
# WAL_LIMIT_BYTES: a disk must fill with batches, which can be evicted, and never with a
# log that only a checkpoint (needing space itself) could shrink.
WAL_CHECKPOINT_PAGES = 100
WAL_LIMIT_BYTES = 512 * 1024
DISK_FULL_EVICT = 0.1  # share of the waiting bytes evicted when the disk space runs out


def free_disk_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem holding ``path``."""
    stat = os.statvfs(path.parent)
    return stat.f_bavail * stat.f_frsize


class Outbox:
    def __init__(self, path: str | Path, station: str, synchronous: str = "FULL",
                 create: bool = True, free_bytes=free_disk_bytes) -> None:
        self.path = Path(path)
        self.station = station
        self.free_bytes = free_bytes  # () of the outbox's filesystem; replaceable in tests
        # One connection shared by the source jobs and the uplink thread: the lock keeps
        # their transactions from interleaving on it.
        self._lock = threading.RLock()
        if not create and not self.path.exists():
            raise OutboxMissingError(f"no outbox at {self.path}; has `obslink agent run` "
                                     "been started with this config?")
        try:
            self.db = open_database(self.path, synchronous, "outbox")
            self.conn = self.db.conn
            self.conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
            self.conn.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
            apply_migrations(self.conn, MIGRATIONS, on_first=self._create_identity)
            self.epoch = self._meta("epoch")
            if self.epoch is None:
                raise sqlite3.DatabaseError("its identity (meta epoch) is missing")
        except (StorageError, sqlite3.DatabaseError) as exc:
            raise OutboxDamagedError(
                f"outbox {self.path} is damaged and cannot be used ({exc}). Stop the agent "
                f"and run `obslink agent recover CONFIG`: it keeps every readable batch, "
                f"position and QC history in a new outbox and moves the damaged file aside"
            ) from None

    @staticmethod
    def _create_identity(conn) -> None:
        conn.executemany("INSERT INTO meta VALUES (?, ?)",
                         [("epoch", secrets.token_hex(8)), ("next_seq", "1")])

    @contextmanager
    def transaction(self):
        with self._lock, transaction(self.conn) as conn:
            yield conn

    @contextmanager
    def reading(self):
        with self._lock:
            yield self.conn

    def meta(self, key: str) -> str | None:
        with self.reading():
            return self._meta(key)

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
                         "value = excluded.value", (key, value))

    def _meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    # -- ingest ----------------------------------------------------------------------------

    def positions(self, source: str) -> dict[str, SourcePosition]:
        with self.reading() as conn:
            rows = conn.execute('SELECT stream, identity, "offset", state FROM '
                                "source_positions WHERE source = ?", (source,)).fetchall()
        return {stream: SourcePosition(offset, identity, json.loads(state))
                for stream, identity, offset, state in rows}

    def forget(self, source: str, stream: str) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM source_positions WHERE source = ? AND stream = ?",
                         (source, stream))

    def qc_state(self) -> list[tuple[str, str, str]]:
        """(check, series, JSON) rows: the QC checks' history as last committed."""
        with self.reading() as conn:
            return conn.execute("SELECT check_name, series, state FROM qc_state").fetchall()

    def ingest(self, origin: ChunkOrigin, decoded: Decoded, position: SourcePosition,
               adapter: FormatAdapter, max_batch_readings: int,
               clock: dict | None = None, qc: QCColumns | None = None,
               qc_checks: list[str] | None = None,
               qc_state: list[tuple[str, str, str]] = (),
               limits: OutboxLimits | None = None) -> list[int]:
        """Commit readings as batches, quarantined records, the new position and the QC
        history atomically. ``qc`` holds the readings' QC results (with the names of the
        checks in ``qc_checks``); without it the readings go as the adapter made them.

        Returns the sequence numbers of the batches created.
        """
        now = now_us()
        source_info = {"name": origin.source, "stream": origin.stream, "start": origin.start,
                       "end": origin.end, "sha256": origin.sha256}
        readings = decoded.readings
        created = []
        with self.transaction() as conn:
            seq = int(self._meta("next_seq"))
            # the replay window's floor: every batch below it has left the outbox for good
            # or is parked (refused for good: never sent again)
            floor = conn.execute("SELECT min(seq) FROM batches WHERE refused_reason IS NULL"
                                 ).fetchone()[0]
            floor = seq if floor is None else floor
            for first in range(0, len(readings), max_batch_readings):
                end = first + max_batch_readings
                part = readings[first:end]
                body = encode_batch(
                    Batch(self.station, self.epoch, seq, now, part, adapter.name,
                          adapter.version, source_info,
                          clock or {"synced": None, "offset_ms": None},
                          list(qc_checks or []), floor),
                    None if qc is None else QCColumns(qc.qc[first:end], qc.ran[first:end],
                                                      qc.failed[first:end]))
                times = [r.observed_at for r in part]
                conn.execute("INSERT INTO batches (seq, created_at, body, readings, "
                             "first_observed, last_observed, source, bytes) "
                             "VALUES (?,?,?,?,?,?,?,?)",
                             (seq, now, body, len(part), min(times), max(times),
                              origin.source, len(body)))
                created.append(seq)
                seq += 1
            conn.execute("UPDATE meta SET value = ? WHERE key = 'next_seq'", (str(seq),))
            conn.executemany(
                "INSERT INTO quarantine (source, stream, position, line, reason, raw, at) "
                "VALUES (?,?,?,?,?,?,?)",
                [(origin.source, origin.stream, q.position, q.line, q.reason, q.raw, now)
                 for q in decoded.quarantined])
            conn.execute(
                'INSERT INTO source_positions (source, stream, identity, "offset", state, '
                "updated_at) VALUES (?,?,?,?,?,?) ON CONFLICT (source, stream) DO UPDATE SET "
                'identity = excluded.identity, "offset" = excluded."offset", '
                "state = excluded.state, updated_at = excluded.updated_at",
                (origin.source, origin.stream, position.identity, position.offset,
                 json.dumps(position.state), now))
            conn.executemany(
                "INSERT INTO qc_state (check_name, series, state) VALUES (?,?,?) "
                "ON CONFLICT (check_name, series) DO UPDATE SET state = excluded.state",
                qc_state)
            if limits is not None and created:
                # only the newest batch is safe from the caps: a read that made several
                # (a day's file after an outage) keeps the cap to within one batch
                self._enforce(conn, limits, now, keep_from=created[-1])
        return created

    # -- caps ------------------------------------------------------------------------------

    def _enforce(self, conn, limits: OutboxLimits, now: int, keep_from: int) -> list[Gap]:
        """Evict what the caps ask for, never a batch at or after ``keep_from`` (the one
        just committed: the newest data stays)."""
        gaps = []
        if limits.min_free_bytes and \
                self.free_bytes(self.path) - self._wal_headroom() < limits.min_free_bytes:
            share = DISK_FULL_EVICT * self._waiting_bytes(conn)
            if self._reusable_bytes(conn) < share:
                # Too little disk left and no free pages to reuse: evict a share of the
                # backlog now, while there is still room to write the eviction itself.
                victims = self._victims(conn, max(1, int(share)), limits.policy, keep_from)
                gaps += self._evict(conn, victims, "disk-full", now)
        if limits.max_age_s is not None:
            old = [row[0] for row in conn.execute(
                "SELECT seq FROM batches WHERE created_at < ? AND seq < ? ORDER BY seq",
                (now - limits.max_age_s * 1_000_000, keep_from))]
            gaps += self._evict(conn, old, "retention", now)
        if limits.max_bytes is not None:
            total = self._waiting_bytes(conn)
            if total > limits.max_bytes:
                victims = self._victims(conn, total - limits.max_bytes, limits.policy,
                                        keep_from)
                gaps += self._evict(conn, victims, "size-cap", now)
        return gaps

    def _wal_headroom(self) -> int:
        """What the write-ahead log may still grow by: the watermark keeps room for it."""
        try:
            wal = os.stat(self.path.with_name(self.path.name + "-wal")).st_size
        except OSError:
            wal = 0
        return max(0, WAL_LIMIT_BYTES - wal)

    @staticmethod
    def _waiting_bytes(conn) -> int:
        return conn.execute("SELECT coalesce(sum(bytes), 0) FROM batches").fetchone()[0]

    @staticmethod
    def _reusable_bytes(conn) -> int:
        """Free pages inside the database file: written into without growing it."""
        pages = conn.execute("PRAGMA freelist_count").fetchone()[0]
        return pages * conn.execute("PRAGMA page_size").fetchone()[0]

    def evict_for_space(self, fraction: float, policy: str, reason: str) -> list[Gap]:
        """Free about ``fraction`` of the waiting bytes: the disk is full (SQLITE_FULL)."""
        self.checkpoint()  # a log cut back to its limit leaves room for the eviction
        with self.transaction() as conn:
            next_seq = int(self._meta("next_seq"))
            victims = self._victims(conn, max(1, int(self._waiting_bytes(conn) * fraction)),
                                    policy, next_seq)
            gaps = self._evict(conn, victims, reason, now_us())
        self.checkpoint()  # the freed pages, now in the file, take the next batches
        return gaps

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database and cut it back (best effort: on a
        full disk it may not complete, and the next one continues)."""
        with self._lock:
            try:
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except sqlite3.OperationalError as exc:
                log.warning("outbox %s: checkpoint incomplete (%s)", self.path, exc)

    @staticmethod
    def _victims(conn, excess: int, policy: str, keep_from: int) -> list[int]:
        """Sequence numbers to evict to free ``excess`` bytes, by policy."""
        rows = conn.execute("SELECT seq, bytes FROM batches WHERE seq < ? ORDER BY seq",
                            (keep_from,)).fetchall()
        if policy == "thin":
            older_half = rows[:max(1, (len(rows) + 1) // 2)]
            order = older_half[1::2] + older_half[0::2] + rows[len(older_half):]
        else:
            order = rows
        victims, freed = [], 0
        for seq, size in order:
            if freed >= excess:
                break
            victims.append(seq)
            freed += size
        return sorted(victims)

    def _evict(self, conn, seqs: list[int], reason: str, now: int) -> list[Gap]:
        """Delete batches and record them as gaps, one per run of consecutive seqs."""
        if not seqs:
            return []
        rows = {row[0]: row[1:] for row in conn.execute(
            f"SELECT seq, readings, first_observed, last_observed FROM batches WHERE seq IN "
            f"({','.join('?' * len(seqs))})", seqs)}
        conn.executemany("DELETE FROM batches WHERE seq = ?", [(seq,) for seq in seqs])
        gaps, run = [], []
        for seq in sorted(rows):
            if run and seq != run[-1] + 1:
                gaps.append(self._record_gap(conn, run, rows, reason, now))
                run = []
            run.append(seq)
        if run:
            gaps.append(self._record_gap(conn, run, rows, reason, now))
        return gaps

    @staticmethod
    def _record_gap(conn, run: list[int], rows: dict, reason: str, now: int) -> Gap:
        readings = sum(rows[seq][0] for seq in run)
        firsts = [rows[seq][1] for seq in run if rows[seq][1] is not None]
        lasts = [rows[seq][2] for seq in run if rows[seq][2] is not None]
        values = (run[0], run[-1], len(run), readings, min(firsts, default=None),
                  max(lasts, default=None), reason, now)
        cursor = conn.execute(
            "INSERT INTO gaps (first_seq, last_seq, batches, readings, first_observed, "
            "last_observed, reason, at) VALUES (?,?,?,?,?,?,?,?)", values)
        return Gap(cursor.lastrowid, *values)

    def unreported_gaps(self, limit: int = 100) -> list[Gap]:
        with self.reading() as conn:
            rows = conn.execute(
                "SELECT id, first_seq, last_seq, batches, readings, first_observed, "
                "last_observed, reason, at FROM gaps WHERE reported_at IS NULL ORDER BY id "
                "LIMIT ?", (limit,)).fetchall()
        return [Gap(*row) for row in rows]

    # -- uplink ----------------------------------------------------------------------------

    def unsent(self, limit: int, exclude: set[int]) -> list[tuple[int, bytes]]:
        """Batches waiting for an ack, oldest first, skipping those in flight."""
        return [(seq, body) for seq, body, _r, _b in
                self.lane(None, limit, exclude, newest_first=False)]

    def lane(self, live_since: int | None, limit: int, exclude: set[int],
             newest_first: bool, live_until: int = MAX_TIME_US
             ) -> list[tuple[int, bytes, int, int]]:
        """(seq, body, readings, bytes) of unrefused batches not in ``exclude``: the live
        lane (newest observation from ``live_since`` to ``live_until``, newest first) or,
        with ``newest_first`` False, the backlog (the others, oldest first; all with None).
        A batch dated after ``live_until`` (a clock in the future) never counts as live."""
        if newest_first:  # the few batches of the realtime window, found by the lane index
            table, where, order = "batches", "last_observed BETWEEN ? AND ?", "seq DESC"
        else:
            # The backlog in sequence order is the table's own order, read until the limit.
            # Through the lane index, every waiting batch would be read and sorted at every
            # turn, a day's backlog for each bundle published: a drain quadratic in it.
            table, order = "batches NOT INDEXED", "seq"
            where = "(last_observed < ? OR last_observed > ?)" if live_since is not None \
                else "1"
        params = (live_since, live_until) if live_since is not None else ()
        with self.reading() as conn:
            rows = conn.execute(
                f"SELECT seq, body, readings, bytes FROM {table} WHERE refused_reason IS NULL "
                f"AND {where} ORDER BY {order} LIMIT ?",
                (*params, limit + len(exclude))).fetchall()
        return [row for row in rows if row[0] not in exclude][:limit]

    def body(self, seq: int) -> bytes | None:
        with self.reading() as conn:
            row = conn.execute("SELECT body FROM batches WHERE seq = ? AND refused_reason IS "
                               "NULL", (seq,)).fetchone()
        return row[0] if row else None

    def apply_ack(self, ack: Ack) -> tuple[int, int]:
        """Drop committed batches, park refused ones. Returns (removed, parked)."""
        if ack.epoch != self.epoch:
            return 0, 0  # an ack for a previous outbox of this station: nothing of ours
        now = now_us()
        with self.transaction() as conn:
            readings = removed = 0
            for start in range(0, len(ack.committed), 500):  # one statement per 500 seqs
                done = ack.committed[start:start + 500]
                marks = ",".join("?" * len(done))
                readings += conn.execute(f"SELECT coalesce(sum(readings), 0) FROM batches "
                                         f"WHERE seq IN ({marks})", done).fetchone()[0]
                removed += conn.execute(f"DELETE FROM batches WHERE seq IN ({marks})",
                                        done).rowcount
            if readings:
                conn.execute("INSERT INTO acked VALUES (?, ?)", (now, readings))
                conn.execute("DELETE FROM acked WHERE at < ?", (now - 3600 * 1_000_000,))
            conn.executemany("UPDATE gaps SET reported_at = ? WHERE id = ?",
                             [(now, gap) for gap in ack.gaps])
            parked = conn.executemany(
                "UPDATE batches SET refused_reason = ?, refused_at = ? WHERE seq = ?",
                [(refusal[1], now, refusal[0]) for refusal in ack.refused]).rowcount
            conn.execute("INSERT INTO meta VALUES ('last_ack_at', ?) ON CONFLICT (key) "
                         "DO UPDATE SET value = excluded.value", (str(now),))
        return removed, parked

    # -- status ----------------------------------------------------------------------------

    def stats(self) -> OutboxStats:
        with self.reading():
            return self._stats()

    def _stats(self) -> OutboxStats:
        batches, readings, oldest = self.conn.execute(
            "SELECT count(*), coalesce(sum(readings), 0), min(created_at) FROM batches "
            "WHERE refused_reason IS NULL").fetchone()
        refused = self.conn.execute(
            "SELECT count(*) FROM batches WHERE refused_reason IS NOT NULL").fetchone()[0]
        quarantined = self.conn.execute("SELECT count(*) FROM quarantine").fetchone()[0]
        last_ack = self._meta("last_ack_at")
        return OutboxStats(batches, readings, oldest, refused, quarantined,
                           int(last_ack) if last_ack else None, self.epoch,
                           int(self._meta("next_seq")))

    def lanes(self, live_since: int, live_until: int = MAX_TIME_US) -> dict:
        """Batches and readings waiting in the live lane and in the backlog."""
        with self.reading() as conn:
            rows = conn.execute(
                "SELECT last_observed BETWEEN ? AND ?, count(*), coalesce(sum(readings), 0), "
                "coalesce(sum(bytes), 0) FROM batches WHERE refused_reason IS NULL GROUP BY 1",
                (live_since, live_until)).fetchall()
        lanes = {"live": {"batches": 0, "readings": 0, "bytes": 0},
                 "backlog": {"batches": 0, "readings": 0, "bytes": 0}}
        for live, batches, readings, size in rows:
            lanes["live" if live else "backlog"] = {"batches": batches, "readings": readings,
                                                    "bytes": size}
        return lanes

    def drain_rate(self, window_s: int = 300) -> float:
        """Readings acknowledged per second over the last ``window_s`` seconds."""
        with self.reading() as conn:
            acked = conn.execute("SELECT coalesce(sum(readings), 0) FROM acked WHERE at >= ?",
                                 (now_us() - window_s * 1_000_000,)).fetchone()[0]
        return acked / window_s

    def evictions(self) -> dict:
        with self.reading() as conn:
            count, batches, readings, unreported = conn.execute(
                "SELECT count(*), coalesce(sum(batches), 0), coalesce(sum(readings), 0), "
                "count(*) - count(reported_at) FROM gaps").fetchone()
            recent = conn.execute(
                "SELECT first_observed, last_observed, readings, reason, at, reported_at "
                "FROM gaps ORDER BY id DESC LIMIT 5").fetchall()
        keys = ("first_observed", "last_observed", "readings", "reason", "at", "reported_at")
        return {"gaps": count, "batches": batches, "readings": readings,
                "not_yet_reported": unreported, "recent": [dict(zip(keys, r)) for r in recent]}

    def recent_quarantine(self, limit: int = 10) -> list[dict]:
        rows = self.conn.execute(
            "SELECT source, stream, position, line, reason, at FROM quarantine "
            "ORDER BY id DESC LIMIT ?", (limit,))
        keys = ("source", "stream", "position", "line", "reason", "at")
        return [dict(zip(keys, row)) for row in rows]

    def refused(self, limit: int = 10) -> list[dict]:
        rows = self.conn.execute(
            "SELECT seq, readings, refused_reason, refused_at FROM batches WHERE "
            "refused_reason IS NOT NULL ORDER BY seq LIMIT ?", (limit,))
        return [dict(zip(("seq", "readings", "reason", "at"), row)) for row in rows]

    def close(self) -> None:
        self.conn.close()
