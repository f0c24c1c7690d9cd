"""The data catalog behind one storage interface (SQLite now; PostgreSQL fits the same API).

Verification and acknowledgement code talks only to :class:`Catalog`. Batches are stored
idempotently on (station, epoch, seq): at-least-once on the wire, exactly-once here.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path

from obslink.errors import ObslinkError, StorageError
from obslink.plugins.qc_runner import QCRunner
from obslink.readings import QC_NOT_CHECKED, format_utc, now_us
from obslink.sqlite_store import apply_migrations, open_database, transaction
from obslink import wire
from obslink.wire import Batch

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
]


MAX_CATALOG_CHECKS = 62  # bits of a signed 64-bit integer column


class KeyInUseError(ObslinkError):
    """A public key is registered to another station."""


@dataclass(frozen=True)
class Station:
    id: str
    network: str
    name: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    interval_seconds: int | None = None


@dataclass(frozen=True)
class AcceptedBatch:
    batch: Batch
    topic: str
    key_id: str
    signature: bytes
    body: bytes
    received_at: int  # µs


@dataclass(frozen=True)
class AcceptedGap:
    gap: wire.GapReport
    topic: str
    key_id: str
    signature: bytes
    received_at: int  # µs


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
    def add_station(self, station: Station, public_key: bytes, key_id: str) -> None: ...

    @abstractmethod
    def station_keys(self, station: str) -> dict[str, tuple[bytes, str]]:
        """key id -> (raw public key, status) for a station; empty if unknown."""

    @abstractmethod
    def commit(self, accepted: list[AcceptedBatch], qc: QCRunner | None = None) -> list[bool]:
        """Store batches in one transaction; per batch True when new, False when a duplicate.

        With ``qc``, readings that arrive unchecked are checked before they are stored, and
        the checks' history is stored in the same transaction."""

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

    def add_station(self, station: Station, public_key: bytes, key_id: str) -> None:
        now = format_utc(now_us(), fixed=True)
        with transaction(self.conn) as conn:
            conn.execute(
                "INSERT INTO stations (id, name, network, latitude, longitude, "
                "interval_seconds, created_at) VALUES (?,?,?,?,?,?,?) ON CONFLICT (id) DO "
                "UPDATE SET name = excluded.name, network = excluded.network, "
                "latitude = excluded.latitude, longitude = excluded.longitude, "
                "interval_seconds = excluded.interval_seconds",
                (station.id, station.name, station.network, station.latitude,
                 station.longitude, station.interval_seconds, now))
            conn.execute(
                "INSERT INTO station_keys (key_id, station, public_key, status, created_at) "
                "VALUES (?,?,?,'active',?) ON CONFLICT (key_id) DO NOTHING",
                (key_id, station.id, public_key, now))
            owner = conn.execute("SELECT station FROM station_keys WHERE key_id = ?",
                                 (key_id,)).fetchone()[0]
            if owner != station.id:
                raise KeyInUseError(f"key {key_id} is already registered to station {owner}; "
                                    "every station needs its own key pair")

    def stations(self) -> list[dict]:
        return list(self.db["stations"].rows)

    def station_keys(self, station: str) -> dict[str, tuple[bytes, str]]:
        rows = self.conn.execute(
            "SELECT key_id, public_key, status FROM station_keys WHERE station = ?", (station,))
        return {kid: (bytes(key), status) for kid, key, status in rows}

    def station_exists(self, station: str) -> bool:
        return self.conn.execute("SELECT 1 FROM stations WHERE id = ?",
                                 (station,)).fetchone() is not None

    def commit(self, accepted: list[AcceptedBatch], qc: QCRunner | None = None) -> list[bool]:
        committed_at = format_utc(now_us(), fixed=True)
        try:
            with transaction(self.conn):
                flags = [self._insert_batch(item, committed_at, qc) for item in accepted]
                if qc is not None:
                    self.conn.executemany(
                        "INSERT INTO qc_state (check_name, series, state) VALUES (?,?,?) "
                        "ON CONFLICT (check_name, series) DO UPDATE SET state = excluded.state",
                        qc.pending_state())
        except BaseException:
            if qc is not None:
                qc.rollback_state()
            # bits assigned in the failed transaction are gone with it
            self._check_bits.clear()
            self._translators.clear()
            raise
        if qc is not None:
            qc.commit_state()
        return flags

    def qc_state(self) -> list[tuple[str, str, str]]:
        return self.conn.execute("SELECT check_name, series, state FROM qc_state").fetchall()

    def _insert_batch(self, item: AcceptedBatch, committed_at: str,
                      qc: QCRunner | None) -> bool:
        batch = item.batch
        source = batch.source
        raw_sha = source.get("sha256")
        cursor = self.conn.execute(
            "INSERT INTO batches (station, epoch, seq, key_id, signature, signed_sha256, body, "
            "topic, adapter, adapter_version, source_name, source_stream, source_start, "
            "source_end, raw_sha256, clock_synced, clock_offset_ms, readings, created_at, "
            "received_at, committed_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT (station, epoch, seq) DO NOTHING",
            (batch.station, batch.epoch, batch.seq, item.key_id, item.signature,
             hashlib.sha256(item.body).hexdigest(), item.body, item.topic, batch.adapter,
             batch.adapter_version, _text(source.get("name")), _text(source.get("stream")),
             _int(source.get("start")), _int(source.get("end")),
             raw_sha.hex() if isinstance(raw_sha, bytes) else None,
             _bool(batch.clock.get("synced")), _float(batch.clock.get("offset_ms")),
             len(batch.readings), format_utc(batch.created_at, fixed=True),
             format_utc(item.received_at, fixed=True), committed_at))
        if cursor.rowcount == 0:
            return False  # the same batch again: already stored, acknowledge it again
        batch_id = cursor.lastrowid
        readings, translators, origin = self._qc_at_centre(batch, qc)
        self.conn.execute("UPDATE batches SET qc_origin = ? WHERE id = ?", (origin, batch_id))
        times: dict[int, str] = {}  # readings of one record share their time: format once
        for reading in readings:
            if reading.observed_at not in times:
                times[reading.observed_at] = format_utc(reading.observed_at, fixed=True)
        self.conn.executemany(
            "INSERT INTO observations (batch_id, station, observed_at, element, value, unit, "
            "source_field, source_flag, qc, period_s, qc_ran, qc_failed) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            [(batch_id, batch.station, times[r.observed_at], r.element, r.value, r.unit,
              r.source_field, r.source_flag, r.qc, r.period_s, to_bits(r.qc_ran),
              to_bits(r.qc_failed)) for r, to_bits in zip(readings, translators)])
        return True

    def _qc_at_centre(self, batch: Batch, qc: QCRunner | None):
        """Check the readings that arrived unchecked. Returns the readings, per reading the
        function that turns its masks into catalog bits, and where QC ran."""
        readings = batch.readings
        edge = self._mask_translator(batch.qc_checks)
        if qc is None or not qc.names:
            unchecked = []
        elif not batch.qc_checks:  # the sender ran no QC: all of it, missing values too
            unchecked = list(range(len(readings)))
        else:  # what the sender's checks could not judge, the centre's may
            unchecked = [i for i, r in enumerate(readings)
                         if r.qc == QC_NOT_CHECKED and r.value is not None]
        if not unchecked:
            return readings, repeat(edge), "edge" if batch.qc_checks else "none"
        readings = list(readings)
        source = batch.source.get("name")
        annotated = qc.annotate([readings[i] for i in unchecked],
                                f"{batch.station}/{source if isinstance(source, str) else ''}")
        translators = [edge] * len(readings)
        centre = self._mask_translator(qc.names)
        for i, reading in zip(unchecked, annotated):
            readings[i] = reading
            translators[i] = centre
        return readings, translators, "edge+centre" if batch.qc_checks else "centre"

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
        where, params = "station = ?", [station]
        if since is not None:
            where += " AND observed_at >= ?"
            params.append(format_utc(since, fixed=True))
        flags = dict(self.conn.execute(
            f"SELECT qc, count(*) FROM observations WHERE {where} GROUP BY qc", params))
        names = self.qc_check_names()
        per_check: dict[str, tuple[int, int]] = {}
        if names:
            columns = ", ".join(f"sum(qc_ran >> {bit} & 1), sum(qc_failed >> {bit} & 1)"
                                for bit in names)
            row = self.conn.execute(f"SELECT {columns} FROM observations WHERE {where}",
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

    def gaps(self, station: str | None = None) -> list[dict]:
        where, params = ("WHERE station = ?", (station,)) if station else ("", ())
        cursor = self.conn.execute(
            f"SELECT station, first_observed, last_observed, readings, batches, reason, "
            f"evicted_at FROM gaps {where} ORDER BY station, first_observed", params)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row)) for row in cursor]

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

    def stats(self) -> dict[str, int]:
        count = lambda table: self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        return {"stations": count("stations"), "batches": count("batches"),
                "observations": count("observations"), "refused": count("refusals"),
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


def _same_mask(mask: int) -> int:
    return mask


def _text(value):
    return value if isinstance(value, str) else None


def _int(value):
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value):
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else None


def _bool(value):
    return int(value) if isinstance(value, bool) else None
