"""The agent's outbox: readings wait here, durable, until the collector acknowledges them.

Readings, quarantined records and the source position are written in one transaction, so a
kill -9 or a power cut neither loses nor repeats a record. Batches are encoded at ingest and
keep their sequence number forever; ``epoch`` (random, made with the outbox) keeps the batch
identity unique even when a gateway's storage is wiped and its key kept.
"""

from __future__ import annotations

import json
import secrets
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from obslink.errors import StorageError
from obslink.plugins.formats import Decoded, FormatAdapter
from obslink.plugins.qc_runner import QCColumns
from obslink.plugins.sources import ChunkOrigin, SourcePosition
from obslink.readings import now_us
from obslink.sqlite_store import apply_migrations, open_database, transaction
from obslink.wire import Ack, Batch, encode_batch

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
]


class OutboxMissingError(StorageError):
    pass


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


class Outbox:
    def __init__(self, path: str | Path, station: str, synchronous: str = "FULL",
                 create: bool = True) -> None:
        self.path = Path(path)
        self.station = station
        # One connection shared by the source jobs and the uplink thread: the lock keeps
        # their transactions from interleaving on it.
        self._lock = threading.RLock()
        if not create and not self.path.exists():
            raise OutboxMissingError(f"no outbox at {self.path}; has `obslink agent run` "
                                     "been started with this config?")
        self.db = open_database(self.path, synchronous, "outbox")
        self.conn = self.db.conn
        apply_migrations(self.conn, MIGRATIONS, on_first=self._create_identity)
        self.epoch = self._meta("epoch")

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
               qc_state: list[tuple[str, str, str]] = ()) -> list[int]:
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
            for first in range(0, len(readings), max_batch_readings):
                end = first + max_batch_readings
                part = readings[first:end]
                body = encode_batch(
                    Batch(self.station, self.epoch, seq, now, part, adapter.name,
                          adapter.version, source_info,
                          clock or {"synced": None, "offset_ms": None},
                          list(qc_checks or [])),
                    None if qc is None else QCColumns(qc.qc[first:end], qc.ran[first:end],
                                                      qc.failed[first:end]))
                times = [r.observed_at for r in part]
                conn.execute("INSERT INTO batches (seq, created_at, body, readings, "
                             "first_observed, last_observed, source) VALUES (?,?,?,?,?,?,?)",
                             (seq, now, body, len(part), min(times), max(times),
                              origin.source))
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
        return created

    # -- uplink ----------------------------------------------------------------------------

    def unsent(self, limit: int, exclude: set[int]) -> list[tuple[int, bytes]]:
        """Batches waiting for an ack, oldest first, skipping those in flight."""
        with self.reading() as conn:
            rows = conn.execute(
                "SELECT seq, body FROM batches WHERE refused_reason IS NULL ORDER BY seq "
                "LIMIT ?", (limit + len(exclude),)).fetchall()
        return [(seq, body) for seq, body in rows if seq not in exclude][:limit]

    def apply_ack(self, ack: Ack) -> tuple[int, int]:
        """Drop committed batches, park refused ones. Returns (removed, parked)."""
        if ack.epoch != self.epoch:
            return 0, 0  # an ack for a previous outbox of this station: nothing of ours
        now = now_us()
        with self.transaction() as conn:
            removed = conn.executemany("DELETE FROM batches WHERE seq = ?",
                                       [(seq,) for seq in ack.committed]).rowcount
            parked = conn.executemany(
                "UPDATE batches SET refused_reason = ?, refused_at = ? WHERE seq = ?",
                [(reason, now, seq) for seq, reason in ack.refused]).rowcount
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
