"""The data catalog behind one storage interface (SQLite now; PostgreSQL fits the same API).

Verification and acknowledgement code talks only to :class:`Catalog`. Batches are stored
idempotently on (station, epoch, seq): at-least-once on the wire, exactly-once here.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import sqlite3
from abc import ABC, abstractmethod
from dataclasses import dataclass
from itertools import chain
from operator import add
from pathlib import Path
from typing import Callable

from obslink.errors import ObslinkError, StorageError
from obslink.plugins.qc_runner import QCRunner
from obslink.readings import QC_NOT_CHECKED, format_utc, now_us
from obslink.sqlite_store import apply_migrations, insert_rows, open_database, transaction
from obslink import wire
from obslink.wire import BatchColumns

# SQL between integer microseconds since 1970 and format_utc's fixed-width text (floor
# division: a time before 1970 has a negative count but positive fractional digits)
_US_TO_TEXT = ("strftime('%Y-%m-%dT%H:%M:%S', ({0} - (({0} % 1000000) + 1000000) % 1000000) "
               "/ 1000000, 'unixepoch') || printf('.%06dZ', (({0} % 1000000) + 1000000) "
               "% 1000000)")
_TEXT_TO_US = ("(CAST(strftime('%s', substr({0}, 1, 19)) AS INTEGER) * 1000000 + CAST(substr("
               "replace(substr({0}, 21), 'Z', '') || '000000', 1, 6) AS INTEGER))")

MIGRATIONS = [
    ("create catalog tables", """
        CREATE TABLE stations (
            id TEXT PRIMARY KEY,
            name TEXT,
            network TEXT NOT NULL,
            latitude REAL,
            longitude REAL,
            interval_seconds INTEGER,
            created_at TEXT NOT NULL
        );
        CREATE TABLE station_keys (
            key_id TEXT PRIMARY KEY,
            station TEXT NOT NULL REFERENCES stations(id),
            public_key BLOB NOT NULL,
            status TEXT NOT NULL DEFAULT 'active',
            created_at TEXT NOT NULL,
            revoked_at TEXT
        );
        CREATE TABLE batches (
            id INTEGER PRIMARY KEY,
            station TEXT NOT NULL REFERENCES stations(id),
            epoch TEXT NOT NULL,
            seq INTEGER NOT NULL,
            key_id TEXT NOT NULL,
            signature BLOB NOT NULL,
            signed_sha256 TEXT NOT NULL,
            body BLOB NOT NULL,
            topic TEXT NOT NULL,
            adapter TEXT,
            adapter_version TEXT,
            source_name TEXT,
            source_stream TEXT,
            source_start INTEGER,
            source_end INTEGER,
            raw_sha256 TEXT,
            clock_synced INTEGER,
            clock_offset_ms REAL,
            readings INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            received_at TEXT NOT NULL,
            committed_at TEXT NOT NULL,
            UNIQUE (station, epoch, seq)
        );
        CREATE TABLE observations (
            batch_id INTEGER NOT NULL REFERENCES batches(id),
            station TEXT NOT NULL,
            observed_at TEXT NOT NULL,
            element TEXT NOT NULL,
            value REAL,
            unit TEXT NOT NULL,
            source_field TEXT NOT NULL,
            source_flag TEXT,
            qc INTEGER NOT NULL
        );
        CREATE INDEX observations_station_time ON observations (station, observed_at);
        CREATE TABLE refusals (
            id INTEGER PRIMARY KEY,
            received_at TEXT NOT NULL,
            topic TEXT NOT NULL,
            station TEXT,
            key_id TEXT,
            epoch TEXT,
            seq INTEGER,
            reason TEXT NOT NULL,
            detail TEXT NOT NULL,
            payload_sha256 TEXT NOT NULL
        );
    """),
    ("observations say which period an aggregate covers", """
        ALTER TABLE observations ADD COLUMN period_s INTEGER
    """),
    ("QC: which checks ran on each observation and which flagged it", """
        CREATE TABLE qc_checks (bit INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
        ALTER TABLE observations ADD COLUMN qc_ran INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE observations ADD COLUMN qc_failed INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE batches ADD COLUMN qc_origin TEXT;
        CREATE TABLE qc_state (
            check_name TEXT NOT NULL,
            series TEXT NOT NULL,
            state TEXT NOT NULL,
            PRIMARY KEY (check_name, series)
        );
    """),
    ("gaps reported by stations whose outbox evicted batches", """
        CREATE TABLE gaps (
            id INTEGER PRIMARY KEY,
            station TEXT NOT NULL REFERENCES stations(id),
            epoch TEXT NOT NULL,
            gap_id INTEGER NOT NULL,
            first_seq INTEGER NOT NULL,
            last_seq INTEGER NOT NULL,
            batches INTEGER NOT NULL,
            readings INTEGER NOT NULL,
            first_observed TEXT,
            last_observed TEXT,
            reason TEXT NOT NULL,
            evicted_at TEXT NOT NULL,
            received_at TEXT NOT NULL,
            key_id TEXT NOT NULL,
            signature BLOB NOT NULL,
            UNIQUE (station, epoch, gap_id)
        )
    """),
    ("bundles: backlog batches a station signed together", """
        CREATE TABLE bundles (
            id INTEGER PRIMARY KEY,
            station TEXT NOT NULL REFERENCES stations(id),
            topic TEXT NOT NULL,
            key_id TEXT NOT NULL,
            signature BLOB NOT NULL,
            digests BLOB NOT NULL,
            received_at TEXT NOT NULL
        );
        ALTER TABLE batches ADD COLUMN bundle_id INTEGER REFERENCES bundles(id)
    """),
    ("key rotation: an announced successor makes the old key retire after a grace period", """
        ALTER TABLE station_keys ADD COLUMN retire_at INTEGER
    """),
    ("broker accounts: per-station credentials for a closed broker", """
        CREATE TABLE broker_accounts (
            username TEXT PRIMARY KEY,
            station TEXT REFERENCES stations(id),
            password_hash TEXT NOT NULL,
            created_at TEXT NOT NULL
        )
    """),
    ("one-time enrolment tokens", """
        CREATE TABLE enrolment_tokens (
            token_sha256 TEXT PRIMARY KEY,
            station TEXT NOT NULL REFERENCES stations(id),
            created_at TEXT NOT NULL,
            expires_at INTEGER NOT NULL,
            used_at TEXT,
            key_id TEXT
        )
    """),
    ("replay windows: the lowest sequence number each station outbox may still send", """
        CREATE TABLE replay_floors (
            station TEXT NOT NULL,
            epoch TEXT NOT NULL,
            floor INTEGER NOT NULL,
            PRIMARY KEY (station, epoch)
        )
    """),
    # A row of text (station, time, element, unit, field) cost 150 bytes with its index and
    # bound the drain rate; a series number and integer microseconds take a third of that.
    # The view keeps the old columns for whoever reads the catalog with SQL.
    ("compact observations: series numbers and integer times, the old columns as a view", f"""
        CREATE TABLE series (
            id INTEGER PRIMARY KEY,
            station TEXT NOT NULL REFERENCES stations(id),
            element TEXT NOT NULL,
            unit TEXT NOT NULL,
            source_field TEXT NOT NULL,
            period_s INTEGER
        );
        CREATE UNIQUE INDEX series_identity
            ON series (station, element, unit, source_field, coalesce(period_s, -1));
        CREATE TABLE observation_values (
            id INTEGER PRIMARY KEY,
            batch_id INTEGER NOT NULL REFERENCES batches(id),
            series INTEGER NOT NULL REFERENCES series(id),
            observed_us INTEGER NOT NULL,
            value REAL,
            source_flag TEXT,
            qc INTEGER NOT NULL,
            qc_ran INTEGER NOT NULL,
            qc_failed INTEGER NOT NULL
        );
        INSERT INTO series (station, element, unit, source_field, period_s)
            SELECT DISTINCT station, element, unit, source_field, period_s FROM observations;
        INSERT INTO observation_values (batch_id, series, observed_us, value, source_flag, qc,
                                        qc_ran, qc_failed)
            SELECT o.batch_id, s.id, {_TEXT_TO_US.format("o.observed_at")}, o.value,
                   o.source_flag, o.qc, o.qc_ran, o.qc_failed
            FROM observations o JOIN series s ON s.station = o.station
                AND s.element = o.element AND s.unit = o.unit
                AND s.source_field = o.source_field AND s.period_s IS o.period_s
            ORDER BY o.rowid;
        DROP TABLE observations;
        CREATE INDEX observation_values_series_time ON observation_values (series, observed_us);
        CREATE VIEW observations AS
            SELECT o.id, o.batch_id, s.station, {_US_TO_TEXT.format("o.observed_us")}
                       AS observed_at,
                   o.observed_us, s.element, o.value, s.unit, s.source_field, o.source_flag,
                   o.qc, s.period_s, o.qc_ran, o.qc_failed, o.series
            FROM observation_values o JOIN series s ON s.id = o.series
    """),
    # A station converts to its elements' units before signing (obslink.plugins.units);
    # the unit its source wrote stays on the series, and a change of it starts a new one.
    ("series keep the unit their source wrote", f"""
        ALTER TABLE series ADD COLUMN source_unit TEXT;
        DROP INDEX series_identity;
        CREATE UNIQUE INDEX series_identity ON series (station, element, unit, source_field,
            coalesce(period_s, -1), coalesce(source_unit, ''));
        DROP VIEW observations;
        CREATE VIEW observations AS
            SELECT o.id, o.batch_id, s.station, {_US_TO_TEXT.format("o.observed_us")}
                       AS observed_at,
                   o.observed_us, s.element, o.value, s.unit, s.source_field, o.source_flag,
                   o.qc, s.period_s, o.qc_ran, o.qc_failed, o.series, s.source_unit
            FROM observation_values o JOIN series s ON s.id = o.series
    """),
    ("operators' station records: retirement, withdrawn tokens, derived broker accounts, "
     "the enrolment log, the broker configurations written", """
        ALTER TABLE stations ADD COLUMN retired_at TEXT;
        ALTER TABLE enrolment_tokens ADD COLUMN revoked_at TEXT;
        ALTER TABLE broker_accounts ADD COLUMN generation INTEGER;
        ALTER TABLE broker_accounts ADD COLUMN updated_at TEXT;
        UPDATE broker_accounts SET updated_at = created_at;
        CREATE TABLE enrolment_attempts (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            station TEXT,
            key_id TEXT,
            client TEXT,
            outcome TEXT NOT NULL,
            reason TEXT,
            detail TEXT NOT NULL
        );
        CREATE TABLE broker_configs (
            id INTEGER PRIMARY KEY,
            directory TEXT NOT NULL,
            written_at TEXT NOT NULL
        )
    """),
]


MAX_CATALOG_CHECKS = 62  # bits of a signed 64-bit integer column
MAX_CACHED_FIELD_TABLES = 10_000  # field tables' series numbers remembered


class KeyInUseError(ObslinkError):
    """A public key is registered to another station."""


class KeyRevokedError(ObslinkError):
    """A key that was revoked (or retired) is offered again: it never becomes valid again."""


class StationExistsError(ObslinkError):
    """A station id is registered already (or was, and is retired)."""


class EnrolmentError(ObslinkError):
    """An enrolment was refused; ``reason`` is invalid, used, revoked, expired, key-revoked
    or key-in-use; ``station`` the token's station where it is known."""

    def __init__(self, reason: str, message: str, station: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.station = station


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
    digests: bytes  # the bodies' digests, concatenated in the signed order
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


@dataclass(frozen=True)
class QCCounts:
    flags: dict[int, int]  # qc flag -> observations
    checks: dict[str, tuple[int, int]]  # check name -> (observations it ran on, flagged)
    origins: dict[str, int]  # where QC ran (edge, centre, edge+centre, none) -> batches


class Catalog(ABC):
    """What the collector needs from storage."""

    @abstractmethod
    def add_station(self, station: Station, public_key: bytes | None,
                    key_id: str | None) -> None: ...

    @abstractmethod
    def station_keys(self, station: str) -> dict[str, tuple[bytes, str]]:
        """key id -> (raw public key, status) for a station; empty if unknown."""

    def commit(self, accepted: list[AcceptedBatch], qc: QCRunner | None = None) -> list[bool]:
        """Store batches in one transaction; per batch True when new, False when a duplicate.

        With ``qc``, readings that arrive unchecked are checked before they are stored, and
        the checks' history is stored in the same transaction."""
        return self.stage(accepted, qc)()

    @abstractmethod
    def stage(self, accepted: list[AcceptedBatch], qc: QCRunner | None = None
              ) -> Callable[[], list[bool]]:
        """:meth:`commit` in two steps: the batches are written in a transaction left open,
        and the function returned commits it (durably) and returns the flags, or rolls it
        back and raises. It may run on another thread, so that the wait for the disk
        overlaps other work; nothing else may use this catalog until it has returned."""

    @abstractmethod
    def reader(self) -> "Catalog":
        """Another connection to the same catalog, for lookups (keys) while this one
        writes."""

    @abstractmethod
    def qc_state(self) -> list[tuple[str, str, str]]:
        """(check, series, JSON) rows of the centre's QC history, to load a QCRunner."""

    @abstractmethod
    def qc_counts(self, station: str, since: int | None = None) -> QCCounts:
        """QC flags and checks of a station's observations (observed at or after since)."""

    @abstractmethod
    def record_gaps(self, gaps: list[AcceptedGap]) -> None:
        """Store gap reports, idempotently on (station, epoch, gap id)."""

    @abstractmethod
    def record_refusals(self, refusals: list[Refusal]) -> None: ...

    @abstractmethod
    def replay_floors(self, outboxes: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """(station, epoch) -> the highest floor its committed batches declared."""

    @abstractmethod
    def commit_times(self, accepted: list[AcceptedBatch]) -> dict[tuple[str, str, int], str]:
        """When the catalog committed those of ``accepted`` it holds (UTC text)."""

    @abstractmethod
    def evicted(self, outboxes: set[tuple[str, str]]
                ) -> dict[tuple[str, str], list[tuple[int, int, int, str]]]:
        """(station, epoch) -> (first seq, last seq, gap id, reason) of every run of
        batches its gap reports say the station's outbox evicted."""

    @abstractmethod
    def keys_version(self) -> tuple:
        """Changes whenever a key is added or revoked: the collector's cue to look again."""

    @abstractmethod
    def next_retirement(self) -> int | None:
        """When (µs) the next replaced key's grace period ends, if any."""

    @abstractmethod
    def rotate_keys(self, announced: list["AcceptedKey"], grace_s: float) -> list[str]:
        """Register announced keys, retiring their signers after ``grace_s``."""

    @abstractmethod
    def stats(self) -> dict[str, int]: ...

    @abstractmethod
    def close(self) -> None: ...


class SQLiteCatalog(Catalog):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.db = open_database(self.path, "FULL", "catalog")
        self.conn = self.db.conn
        apply_migrations(self.conn, MIGRATIONS)
        self._check_bits: dict[str, int] = {}
        self._translators: dict[tuple[str, ...], object] = {}
        # (station, a batch's field table) -> its series numbers
        self._series: dict[tuple[str, tuple], list[int]] = {}
        self._keys_version: tuple | None = None  # keys_version()'s last count, made at
        self._data_version: int | None = None  # this PRAGMA data_version

    def add_station(self, station: Station, public_key: bytes | None, key_id: str | None
                    ) -> None:
        """Register a new station, with its key unless it will enrol for one (operators go
        through obslink.server.station_records, which also makes its broker account)."""
        with transaction(self.conn) as conn:
            try:
                conn.execute(
                    "INSERT INTO stations (id, name, network, latitude, longitude, "
                    "interval_seconds, created_at) VALUES (?,?,?,?,?,?,?)",
                    (station.id, station.name, station.network, station.latitude,
                     station.longitude, station.interval_seconds,
                     format_utc(now_us(), fixed=True)))
            except sqlite3.IntegrityError:
                raise StationExistsError(f"station {station.id} is registered already; "
                                         "`obslink collector station update` changes it"
                                         ) from None
            if public_key is not None:
                self.add_key_in(conn, station.id, public_key, key_id)

    def add_key(self, station: str, public_key: bytes, key_id: str) -> None:
        """Register another key of an existing station."""
        with transaction(self.conn) as conn:
            if conn.execute("SELECT 1 FROM stations WHERE id = ? AND retired_at IS NULL",
                            (station,)).fetchone() is None:
                raise StorageError(f"no active station {station!r}; add it first")
            self.add_key_in(conn, station, public_key, key_id)

    def add_key_in(self, conn, station: str, public_key: bytes, key_id: str) -> None:
        """add_key inside the caller's transaction. A key of another station, or one that
        was revoked or retired, is refused."""
        self._keys_version = None
        found = conn.execute("SELECT station, status, revoked_at FROM station_keys WHERE "
                             "key_id = ?", (key_id,)).fetchone()
        if found is None:
            conn.execute("INSERT INTO station_keys (key_id, station, public_key, status, "
                         "created_at) VALUES (?,?,?,'active',?)",
                         (key_id, station, public_key, format_utc(now_us(), fixed=True)))
            return
        owner, status, revoked_at = found
        if owner != station:
            raise KeyInUseError(f"key {key_id} is already registered to station {owner}; "
                                "every station needs its own key pair")
        if status != "active":
            raise KeyRevokedError(f"key {key_id} of station {owner} was {status}"
                                  + (f" at {revoked_at}" if revoked_at else "") + "; a key "
                                  "that stopped being valid never becomes valid again: make a "
                                  "new key pair (obslink agent keygen)")

    def keys_changed(self) -> None:
        """Another object changed keys through this connection: count them again."""
        self._keys_version = None

    def station_keys(self, station: str) -> dict[str, tuple[bytes, str]]:
        """A key being replaced counts as active until its grace period ends, then as
        retired."""
        rows = self.conn.execute("SELECT key_id, public_key, status, retire_at FROM "
                                 "station_keys WHERE station = ?", (station,))
        now = now_us()
        return {kid: (bytes(key), status if status != "retiring" else
                      ("active" if now < retire_at else "retired"))
                for kid, key, status, retire_at in rows}

    def rotate_keys(self, announced: list[AcceptedKey], grace_s: float) -> list[str]:
        """Register announced keys; each signer retires ``grace_s`` later. Idempotent.
        Returns, per announcement, "" or why it was refused."""
        outcomes = []
        with transaction(self.conn) as conn:
            for item in announced:
                rotation = item.rotation
                try:
                    self.add_key_in(conn, rotation.station, rotation.public_key,
                                    rotation.key_id)
                except (KeyInUseError, KeyRevokedError) as exc:
                    outcomes.append(str(exc))
                    continue
                if item.signer != rotation.key_id:
                    self._keys_version = None
                    conn.execute(
                        "UPDATE station_keys SET status = 'retiring', retire_at = ? "
                        "WHERE key_id = ? AND status = 'active'",
                        (now_us() + int(grace_s * 1_000_000), item.signer))
                outcomes.append("")
        return outcomes

    def station_exists(self, station: str) -> bool:
        return self.conn.execute("SELECT 1 FROM stations WHERE id = ?",
                                 (station,)).fetchone() is not None

    def stage(self, accepted: list[AcceptedBatch], qc: QCRunner | None = None
              ) -> Callable[[], list[bool]]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            flags = self._insert_batches(accepted, qc)
            self._raise_floors(accepted)
            if qc is not None:
                self.conn.executemany(
                    "INSERT INTO qc_state (check_name, series, state) VALUES (?,?,?) "
                    "ON CONFLICT (check_name, series) DO UPDATE SET state = excluded.state",
                    qc.pending_state())
        except BaseException:
            self._roll_back(qc)
            raise

        def finish() -> list[bool]:
            try:
                self.conn.execute("COMMIT")
            except BaseException:
                self._roll_back(qc)
                raise
            if qc is not None:
                qc.commit_state()
            return flags
        return finish

    def _roll_back(self, qc: QCRunner | None) -> None:
        if self.conn.in_transaction:  # SQLite rolls back by itself on some errors (disk full)
            self.conn.execute("ROLLBACK")
        if qc is not None:
            qc.rollback_state()
        # bits assigned in the failed transaction are gone with it
        self._check_bits.clear()
        self._translators.clear()
        self._series.clear()

    def reader(self) -> "SQLiteCatalog":
        return SQLiteCatalog(self.path)

    def qc_state(self) -> list[tuple[str, str, str]]:
        return self.conn.execute("SELECT check_name, series, state FROM qc_state").fetchall()

    def _insert_batches(self, accepted: list[AcceptedBatch], qc: QCRunner | None) -> list[bool]:
        """Insert the batches not stored yet, a statement per table for the whole group
        (the drain rate depends on it). Runs inside the caller's write transaction, so the
        ids assigned here cannot be taken by another writer."""
        stored = self._already_stored(accepted)
        flags, new = [], []
        for item in accepted:
            identity = (item.batch.station, item.batch.epoch, item.batch.seq)
            flags.append(identity not in stored)
            if identity not in stored:
                stored.add(identity)  # the same batch twice in one group is stored once
                new.append(item)
        if not new:
            return flags
        utc = _UTCCache()
        committed_at = utc[now_us()]
        bundle_ids = {bundle: self._insert_bundle(bundle, utc) for bundle in
                      dict.fromkeys(item.bundle for item in new if item.bundle is not None)}
        first_id = self.conn.execute("SELECT coalesce(max(id), 0) + 1 FROM batches").fetchone()[0]
        batch_values: list = []
        plain: list = []  # observation values of batches without source flags
        flagged: list = []  # … and of those with (their rows carry a source_flag column)
        for batch_id, item in enumerate(new, start=first_id):
            batch, source = item.batch, item.batch.source
            qcs, ran, failed, origin = self._qc_at_centre(batch, qc)
            raw_sha = source.get("sha256")
            batch_values += (
                batch_id, batch.station, batch.epoch, batch.seq, item.key_id, item.signature,
                hashlib.sha256(item.body).hexdigest(), item.body, item.topic, batch.adapter,
                batch.adapter_version, _text(source.get("name")), _text(source.get("stream")),
                _int(source.get("start")), _int(source.get("end")),
                raw_sha.hex() if isinstance(raw_sha, bytes) else None,
                _bool(batch.clock.get("synced")), _float(batch.clock.get("offset_ms")),
                len(batch.times), utc[batch.created_at], utc[item.received_at], committed_at,
                origin, bundle_ids.get(item.bundle))
            # A row is its series' constant part + the reading's own columns, joined in C:
            # the drain rate depends on not running Python code per reading.
            prefixes = [(batch_id, series)
                        for series in self._series_ids(batch.station, batch.fields)]
            series_parts = map(prefixes.__getitem__, batch.field_index)
            if batch.flags:
                source_flags = map(batch.flags.get, range(len(batch.times)))
                flagged += chain.from_iterable(map(add, series_parts, zip(
                    batch.times, batch.values, source_flags, qcs, ran, failed)))
            else:  # binding None costs a lookup per value in the sqlite3 module: NULL in SQL
                plain += chain.from_iterable(map(add, series_parts, zip(
                    batch.times, batch.values, qcs, ran, failed)))
        # no ON CONFLICT: a duplicate here would be a bug, and the group is then not acked
        insert_rows(self.conn, "batches (id, station, epoch, seq, key_id, signature, "
                    "signed_sha256, body, topic, adapter, adapter_version, source_name, "
                    "source_stream, source_start, source_end, raw_sha256, clock_synced, "
                    "clock_offset_ms, readings, created_at, received_at, committed_at, "
                    "qc_origin, bundle_id)", "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    batch_values)
        observations = ("observation_values (batch_id, series, observed_us, value, "
                        "source_flag, qc, qc_ran, qc_failed)")
        insert_rows(self.conn, observations, "(?,?,?,?,NULL,?,?,?)", plain)
        insert_rows(self.conn, observations, "(?,?,?,?,?,?,?,?)", flagged)
        return flags

    def _series_ids(self, station: str,
                    fields: list[tuple[str, str, str, int | None, str | None]]) -> list[int]:
        """The numbers of a station's series (element, unit, source field, period), in the
        order of a batch's field table; a series is made the first time it is seen. A
        station sends the same field table in every batch, so whole tables are remembered.
        Runs inside the commit's transaction."""
        key = (station, tuple(fields))
        found = self._series.get(key)
        if found is None:
            found = []
            for element, unit, source_field, period_s, source_unit in fields:
                row = self.conn.execute(
                    "SELECT id FROM series WHERE station = ? AND element = ? AND unit = ? AND "
                    "source_field = ? AND coalesce(period_s, -1) = coalesce(?, -1) AND "
                    "coalesce(source_unit, '') = coalesce(?, '')",
                    (station, element, unit, source_field, period_s, source_unit)).fetchone()
                found.append(row[0] if row else self.conn.execute(
                    "INSERT INTO series (station, element, unit, source_field, period_s, "
                    "source_unit) VALUES (?,?,?,?,?,?)",
                    (station, element, unit, source_field, period_s, source_unit)).lastrowid)
            if len(self._series) >= MAX_CACHED_FIELD_TABLES:  # a station inventing fields
                self._series.clear()
            self._series[key] = found
        return found

    def _raise_floors(self, accepted: list[AcceptedBatch]) -> None:
        floors: dict[tuple[str, str], int] = {}
        for item in accepted:
            batch = item.batch
            if batch.floor is not None:
                key = (batch.station, batch.epoch)
                floors[key] = max(batch.floor, floors.get(key, 0))
        self.conn.executemany(
            "INSERT INTO replay_floors (station, epoch, floor) VALUES (?,?,?) "
            "ON CONFLICT (station, epoch) DO UPDATE SET floor = max(floor, excluded.floor)",
            [(station, epoch, floor) for (station, epoch), floor in floors.items()])

    def replay_floors(self, outboxes: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
        found = {}
        for station, epoch in outboxes:
            row = self.conn.execute("SELECT floor FROM replay_floors WHERE station = ? AND "
                                    "epoch = ?", (station, epoch)).fetchone()
            if row is not None:
                found[(station, epoch)] = row[0]
        return found

    def _already_stored(self, accepted: list[AcceptedBatch]) -> set[tuple[str, str, int]]:
        return set(self.commit_times(accepted))

    def commit_times(self, accepted: list[AcceptedBatch]) -> dict[tuple[str, str, int], str]:
        """When each of ``accepted`` the catalog holds was committed (UTC text), one indexed
        query per station and epoch."""
        ranges: dict[tuple[str, str], list[int]] = {}
        for item in accepted:
            seqs = ranges.setdefault((item.batch.station, item.batch.epoch), [])
            seqs.append(item.batch.seq)
        stored = {}
        for (station, epoch), seqs in ranges.items():
            for start in range(0, len(seqs), 500):  # well below SQLite's variable limit
                chunk = seqs[start:start + 500]
                stored.update(((station, epoch, seq), at) for seq, at in self.conn.execute(
                    f"SELECT seq, committed_at FROM batches WHERE station = ? AND epoch = ? "
                    f"AND seq IN ({','.join('?' * len(chunk))})", (station, epoch, *chunk)))
        return stored

    def _insert_bundle(self, bundle: SignedBundle, utc: "_UTCCache") -> int:
        station = wire.parse_data_topic(bundle.topic)[1]
        return self.conn.execute(
            "INSERT INTO bundles (station, topic, key_id, signature, digests, received_at) "
            "VALUES (?,?,?,?,?,?)", (station, bundle.topic, bundle.key_id, bundle.signature,
                                     bundle.digests, utc[bundle.received_at])).lastrowid

    def _qc_at_centre(self, batch: BatchColumns, qc: QCRunner | None):
        """Check the readings that arrived unchecked. Returns the qc column, the ran and
        failed masks as catalog bits, and where QC ran."""
        edge = self._mask_translator(batch.qc_checks)
        ran, failed = batch.qc_ran, batch.qc_failed
        if edge is not _same_mask:
            ran, failed = list(map(edge, ran)), list(map(edge, failed))
        if qc is None or not qc.names:
            unchecked = []
        elif not batch.qc_checks:  # the sender ran no QC: all of it, missing values too
            unchecked = list(range(len(batch.times)))
        elif QC_NOT_CHECKED not in batch.qc:
            unchecked = []
        else:  # what the sender's checks could not judge, the centre's may
            unchecked = [i for i, (q, value) in enumerate(zip(batch.qc, batch.values))
                         if q == QC_NOT_CHECKED and value is not None]
        if not unchecked:
            return batch.qc, ran, failed, "edge" if batch.qc_checks else "none"
        readings = batch.readings()
        source = batch.source.get("name")
        checked = qc.run([readings[i] for i in unchecked],
                         f"{batch.station}/{source if isinstance(source, str) else ''}")
        qcs, ran, failed = list(batch.qc), list(ran), list(failed)
        centre = self._mask_translator(qc.names)
        for i, q, r, f in zip(unchecked, checked.qc, checked.ran, checked.failed):
            qcs[i], ran[i], failed[i] = q, centre(r), centre(f)
        return qcs, ran, failed, "edge+centre" if batch.qc_checks else "centre"

    def _mask_translator(self, names: list[str]):
        """A function from a mask over ``names`` to a mask over the catalog's check bits."""
        key = tuple(names)
        found = self._translators.get(key)
        if found is None:
            bits = [self._check_bit(name) for name in names]
            if bits == list(range(len(bits))):
                found = _same_mask
            else:
                cache: dict[int, int] = {}

                def found(mask: int) -> int:
                    out = cache.get(mask)
                    if out is None:
                        out = cache[mask] = sum(1 << bit for j, bit in enumerate(bits)
                                                if mask >> j & 1)
                    return out
            self._translators[key] = found
        return found

    def _check_bit(self, name: str) -> int:
        bit = self._check_bits.get(name)
        if bit is None:
            row = self.conn.execute("SELECT bit FROM qc_checks WHERE name = ?",
                                    (name,)).fetchone()
            if row is None:
                bit = self.conn.execute("SELECT coalesce(max(bit) + 1, 0) FROM qc_checks"
                                        ).fetchone()[0]
                if bit >= MAX_CATALOG_CHECKS:
                    raise StorageError(f"the catalog holds {MAX_CATALOG_CHECKS} QC check "
                                       f"names already; cannot add {name!r}")
                self.conn.execute("INSERT INTO qc_checks (bit, name) VALUES (?, ?)",
                                  (bit, name))
            else:
                bit = row[0]
            self._check_bits[name] = bit
        return bit

    def qc_check_names(self) -> dict[int, str]:
        return dict(self.conn.execute("SELECT bit, name FROM qc_checks ORDER BY bit"))

    def qc_counts(self, station: str, since: int | None = None) -> QCCounts:
        where, params = "series IN (SELECT id FROM series WHERE station = ?)", [station]
        if since is not None:
            where += " AND observed_us >= ?"
            params.append(since)
        flags = dict(self.conn.execute(
            f"SELECT qc, count(*) FROM observation_values WHERE {where} GROUP BY qc", params))
        names = self.qc_check_names()
        per_check: dict[str, tuple[int, int]] = {}
        if names:
            columns = ", ".join(f"sum(qc_ran >> {bit} & 1), sum(qc_failed >> {bit} & 1)"
                                for bit in names)
            row = self.conn.execute(f"SELECT {columns} FROM observation_values WHERE {where}",
                                    params).fetchone()
            for index, name in enumerate(names.values()):
                ran, failed = row[2 * index] or 0, row[2 * index + 1] or 0
                if ran:
                    per_check[name] = (ran, failed)
        origins = dict(self.conn.execute(
            "SELECT coalesce(qc_origin, 'none'), count(*) FROM batches WHERE station = ? "
            "GROUP BY 1", (station,)))
        return QCCounts(flags, per_check, origins)

    def record_gaps(self, gaps: list[AcceptedGap]) -> None:
        if not gaps:
            return
        show = lambda us: None if us is None else format_utc(us, fixed=True)  # noqa: E731
        with transaction(self.conn):
            self.conn.executemany(
                "INSERT INTO gaps (station, epoch, gap_id, first_seq, last_seq, batches, "
                "readings, first_observed, last_observed, reason, evicted_at, received_at, "
                "key_id, signature) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (station, epoch, gap_id) DO NOTHING",
                [(g.gap.station, g.gap.epoch, g.gap.id, g.gap.first_seq, g.gap.last_seq,
                  g.gap.batches, g.gap.readings, show(g.gap.first_observed),
                  show(g.gap.last_observed), g.gap.reason, show(g.gap.at),
                  show(g.received_at), g.key_id, g.signature) for g in gaps])

    def evicted(self, outboxes: set[tuple[str, str]]
                ) -> dict[tuple[str, str], list[tuple[int, int, int, str]]]:
        found: dict[tuple[str, str], list[tuple[int, int, int, str]]] = {}
        for station, epoch in outboxes:
            found[(station, epoch)] = self.conn.execute(
                "SELECT first_seq, last_seq, gap_id, reason FROM gaps WHERE station = ? AND "
                "epoch = ?", (station, epoch)).fetchall()
        return found

    def gaps(self, station: str | None = None) -> list[dict]:
        where, params = ("WHERE station = ?", (station,)) if station else ("", ())
        cursor = self.conn.execute(
            f"SELECT station, first_observed, last_observed, readings, batches, reason, "
            f"evicted_at FROM gaps {where} ORDER BY station, first_observed", params)
        return _dicts(cursor)

    def record_refusals(self, refusals: list[Refusal]) -> None:
        if not refusals:
            return
        with transaction(self.conn):
            self.conn.executemany(
                "INSERT INTO refusals (received_at, topic, station, key_id, epoch, seq, reason, "
                "detail, payload_sha256) VALUES (?,?,?,?,?,?,?,?,?)",
                [(format_utc(r.received_at, fixed=True), r.topic, r.station, r.key_id, r.epoch,
                  r.seq, r.reason, r.detail, hashlib.sha256(r.payload).hexdigest())
                 for r in refusals])

    def refusals(self, station: str | None = None, since: int | None = None,
                 limit: int = 50) -> tuple[dict[str, int], list[dict]]:
        """Refused messages: counts per reason, and the newest ``limit`` of them."""
        where, params = ["1"], []
        if station:
            where.append("station = ?")
            params.append(station)
        if since is not None:
            where.append("received_at >= ?")
            params.append(format_utc(since, fixed=True))
        condition = " AND ".join(where)
        counts = dict(self.conn.execute(
            f"SELECT reason, count(*) FROM refusals WHERE {condition} GROUP BY reason "
            f"ORDER BY count(*) DESC, reason", params))
        cursor = self.conn.execute(
            f"SELECT received_at, station, key_id, epoch, seq, reason, detail, topic, "
            f"payload_sha256 FROM refusals WHERE {condition} ORDER BY id DESC LIMIT ?",
            (*params, limit))
        return counts, _dicts(cursor)

    def keys(self, station: str | None = None) -> list[dict]:
        where, params = ("WHERE station = ?", (station,)) if station else ("", ())
        cursor = self.conn.execute(
            f"SELECT station, key_id, status, created_at, revoked_at, retire_at FROM "
            f"station_keys {where} ORDER BY station, created_at", params)
        keys, now = _dicts(cursor), now_us()
        for key in keys:
            if key["retire_at"] is not None:
                if key["status"] == "retiring" and now >= key["retire_at"]:
                    key["status"] = "retired"
                key["retire_at"] = format_utc(key["retire_at"], fixed=True)
        return keys

    def revoke_key(self, key_id: str) -> dict:
        """Mark a key revoked; a collector refuses its next batch (reason revoked-key)."""
        with transaction(self.conn) as conn:
            row = conn.execute("SELECT station, status FROM station_keys WHERE key_id = ?",
                               (key_id,)).fetchone()
            if row is None:
                raise StorageError(f"no key {key_id!r} in the catalog; `obslink collector "
                                   "keys list` shows the key ids")
            if row[1] != "revoked":
                self._keys_version = None
                conn.execute("UPDATE station_keys SET status = 'revoked', revoked_at = ? "
                             "WHERE key_id = ?", (format_utc(now_us(), fixed=True), key_id))
        return next(key for key in self.keys(row[0]) if key["key_id"] == key_id)

    def next_retirement(self) -> int | None:
        """When (µs) the next key in its grace period retires, if any."""
        return self.conn.execute("SELECT min(retire_at) FROM station_keys WHERE status = "
                                 "'retiring' AND retire_at > ?", (now_us(),)).fetchone()[0]

    def keys_version(self) -> tuple:
        # Asked before every group: the count runs only after a key change through this
        # connection or a commit by another one (which is what PRAGMA data_version tells).
        data_version = self.conn.execute("PRAGMA data_version").fetchone()[0]
        if self._keys_version is None or data_version != self._data_version:
            self._data_version = data_version
            self._keys_version = self.conn.execute(
                "SELECT count(*), count(revoked_at), max(revoked_at), count(retire_at) "
                "FROM station_keys").fetchone()
        return self._keys_version

    def stats(self) -> dict[str, int]:
        count = lambda table: self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        return {"stations": count("stations"), "batches": count("batches"),
                "observations": count("observation_values"), "refused": count("refusals"),
                "gaps": count("gaps"),
                "readings_lost_in_gaps": self.conn.execute(
                    "SELECT coalesce(sum(readings), 0) FROM gaps").fetchone()[0]}

    def close(self) -> None:
        self.conn.close()


def open_catalog(location: str | Path) -> Catalog:
    """A catalog from a path (SQLite). PostgreSQL URLs come with the PostgreSQL backend."""
    text = str(location)
    if text.startswith(("postgres://", "postgresql://")):
        raise StorageError("the PostgreSQL catalog backend is not available in this version; "
                           "pass a SQLite file path with --db")
    return SQLiteCatalog(text)


PASSWORD_HASH_ITERATIONS = 1000


def mosquitto_password_hash(password: str) -> str:
    """Mosquitto 2's password-file hash: ``$7$`` PBKDF2-HMAC-SHA512, iterations, salt."""
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PASSWORD_HASH_ITERATIONS)
    return (f"$7${PASSWORD_HASH_ITERATIONS}${base64.b64encode(salt).decode()}$"
            f"{base64.b64encode(digest).decode()}")


def _dicts(cursor) -> list[dict]:
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row)) for row in cursor]


class _UTCCache(dict):
    """format_utc (fixed width) for the many repeated times of a group, by ``cache[us]``:
    a record's readings share one time, and the times of one day share one strftime."""

    def __init__(self) -> None:
        super().__init__()
        self.days: dict[int, str] = {}

    def __missing__(self, us: int) -> str:
        day, in_day = divmod(us, 86_400_000_000)
        prefix = self.days.get(day)
        if prefix is None:  # "YYYY-MM-DDT"
            prefix = self.days[day] = format_utc(day * 86_400_000_000)[:11]
        seconds, micros = divmod(in_day, 1_000_000)
        minutes, second = divmod(seconds, 60)
        hour, minute = divmod(minutes, 60)
        text = self[us] = f"{prefix}{hour:02d}:{minute:02d}:{second:02d}.{micros:06d}Z"
        return text


def _same_mask(mask: int) -> int:
    return mask


def _text(value):
    return value if isinstance(value, str) else None


def _int(value):
    """An optional integer from a batch's free-form maps, if SQLite can hold it."""
    return value if type(value) is int and -2**63 <= value < 2**63 else None


def _float(value):
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else None


def _bool(value):
    return int(value) if isinstance(value, bool) else None
