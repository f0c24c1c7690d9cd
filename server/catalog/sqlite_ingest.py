"""The SQLite catalog's ingest path: verified batches in, one statement per table for a
whole group (the drain rate depends on it), idempotent on (station, epoch, seq)."""

from __future__ import annotations

import hashlib
import sqlite3
from itertools import chain
from operator import add
from typing import Callable

from obslink import wire
from obslink.errors import StorageError
from obslink.readings import format_utc, now_us
from obslink.sqlite_store import insert_rows, transaction
from obslink.server.catalog.interface import CentreCheck, Screen
from obslink.server.catalog.log_entries import leaf_hash, qc_sha256
from obslink.server.catalog.monitor_counts import ArrivalCounts
from obslink.server.catalog.outcomes import (AcceptedBatch, AcceptedGap, BatchQC, Refusal,
                                             SignedBundle, declared_floors)
from obslink.server.catalog.sqlite_schema import MAX_CATALOG_CHECKS

MAX_CACHED_FIELD_TABLES = 10_000  # field tables' series numbers remembered


class SQLiteIngest:
    """Mixed into SQLiteCatalog, whose ``conn`` it writes through."""

    conn: sqlite3.Connection
    #: the next observation row number, as SQL (SQLite numbers its rowids max + 1)
    _next_row = "(SELECT coalesce(max(id), 0) + 1 FROM observation_values)"
    #: every batch gets a log leaf; False only where bench/log_cost.py measures what that costs
    transparency_log = True
    #: what arrived is counted for monitoring as it commits; False only where
    #: bench/monitor_cost.py measures what that costs
    monitoring = True

    def _init_ingest(self) -> None:
        self._check_bits: dict[str, int] = {}
        self._bit_names: dict[int, str] = {}
        self._translators: dict[tuple[str, ...], object] = {}
        # (station, a batch's field table) -> its series numbers
        self._series: dict[tuple[str, tuple], list[int]] = {}

    def is_transient(self, error: Exception) -> bool:
        """The database's state (disk full, locked, I/O, damaged), not the message: a
        redelivery may succeed. Anything else (a value SQLite cannot hold, a catalog limit)
        fails again each time."""
        return isinstance(error, (sqlite3.OperationalError, OSError, MemoryError)) or \
            type(error) is sqlite3.DatabaseError

    def stage(self, accepted: list[AcceptedBatch], check: CentreCheck | None = None,
              screen: Screen | None = None) -> Callable[[], list[bool]]:
        # IMMEDIATE: the write lock first, so that what the screen reads (replay floors,
        # gap reports) cannot change under it in another worker's transaction
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            if screen is not None:
                accepted = screen(accepted)
            flags = self._insert_batches(accepted, check)
            self._store_floors(declared_floors(accepted))
        except BaseException:
            self._roll_back()
            raise

        def finish() -> list[bool]:
            try:
                self.conn.execute("COMMIT")
            except BaseException:
                self._roll_back()
                raise
            return flags
        return finish

    def _roll_back(self) -> None:
        if self.conn.in_transaction:  # SQLite rolls back by itself on some errors (disk full)
            self.conn.execute("ROLLBACK")
        # bits assigned in the failed transaction are gone with it
        self._check_bits.clear()
        self._bit_names.clear()
        self._translators.clear()
        self._series.clear()

    def _insert_batches(self, accepted: list[AcceptedBatch],
                        check: CentreCheck | None) -> list[bool]:
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
        if check is None:
            columns = [BatchQC.as_sent(item.batch) for item in new]
        else:
            checked = check(new)
            columns = checked.columns
            self.conn.executemany(
                "INSERT INTO qc_state (check_name, series, state) VALUES (?,?,?) "
                "ON CONFLICT (check_name, series) DO UPDATE SET state = excluded.state",
                checked.state)
        utc = _UTCCache()
        committed_us = now_us()
        committed_at = utc[committed_us]
        arrivals = ArrivalCounts(committed_us)  # monitoring's counts (docs/monitoring.md)
        # ids are the highest stored + 1, in the order the rows below are inserted
        first_bundle, first_id, first_leaf, next_row = self._first_ids()
        bundles = dict.fromkeys(item.bundle for item in new if item.bundle is not None)
        bundle_ids = dict(zip(bundles, range(first_bundle, first_bundle + len(bundles))))
        self._insert_rows("bundles (id, station, topic, key_id, signature, digests, "
                          "received_at)", "(?,?,?,?,?,?,?)", list(chain.from_iterable(
                              _bundle_row(number, bundle, utc)
                              for bundle, number in bundle_ids.items())))
        # a bundle's batches share its digest list: its hash is taken once, for their leaves
        bundle_hashes = {bundle: hashlib.sha256(bundle.digests).digest() for bundle in bundles}
        committed_by = self.committed_by
        # each batch's row, with its reading count: its observations' first row id is
        # known once every batch's is (plain ones are inserted first)
        plain_batches: list[tuple[list, int]] = []
        flagged_batches: list[tuple[list, int]] = []
        leaves: list = []  # the transparency log's new leaves (docs/provenance.md)
        contexts: dict[tuple[str, bytes], bytes] = {}  # v2 batches' contexts
        plain: list = []  # observation values of batches without source flags
        flagged: list = []  # … and of those with (their rows carry a source_flag column)
        for batch_id, (item, qc) in enumerate(zip(new, columns), start=first_id):
            batch, source = item.batch, item.batch.source
            qcs, ran, failed = qc.qc, qc.ran, qc.failed
            clock = (_bool(batch.clock.get("synced")), _float(batch.clock.get("offset_ms")))
            if self.monitoring:
                arrivals.add(batch.station, batch.times, batch.values, qcs, clock)
            translate = self._mask_translator(qc.checks)
            if translate is not _same_mask:
                ran, failed = list(map(translate, ran)), list(map(translate, failed))
            raw_sha = source.get("sha256")
            body_sha = hashlib.sha256(item.body).digest()
            received_at = utc[item.received_at]
            log_index = None
            if self.transparency_log:
                log_index = first_leaf + batch_id - first_id
                qc_digest = qc_sha256(qc.origin, self._bit_names, qcs, ran, failed)
                leaves += (log_index, batch_id, committed_by, qc_digest, leaf_hash(
                    item.topic, item.key_id, item.signature, body_sha,
                    bundle_hashes.get(item.bundle), received_at, committed_at,
                    committed_by, qc_digest))
            batch_row = [
                batch_id, batch.station, batch.epoch, batch.seq, item.key_id, item.signature,
                body_sha.hex(), item.body, item.topic, batch.adapter,
                batch.adapter_version, _text(source.get("name")), _text(source.get("stream")),
                _int(source.get("start")), _int(source.get("end")),
                raw_sha.hex() if isinstance(raw_sha, bytes) else None,
                *clock, len(batch.times), utc[batch.created_at], received_at, committed_at,
                qc.origin, bundle_ids.get(item.bundle), log_index,
                None if item.context is None else wire.context_ref(item.context)]
            if item.context is not None:
                contexts[(batch.station, batch_row[-1])] = item.context
            # A row is its series' constant part + the reading's own columns, joined in C:
            # the drain rate depends on not running Python code per reading.
            prefixes = [(batch_id, series)
                        for series in self._series_ids(batch.station, batch.fields)]
            series_parts = map(prefixes.__getitem__, batch.field_index)
            (flagged_batches if batch.flags else plain_batches).append(
                (batch_row, len(batch.times)))
            if batch.flags:
                source_flags = map(batch.flags.get, range(len(batch.times)))
                flagged += chain.from_iterable(map(add, series_parts, zip(
                    batch.times, batch.values, source_flags, qcs, ran, failed)))
            else:  # binding None costs a lookup per value in the sqlite3 module: NULL in SQL
                plain += chain.from_iterable(map(add, series_parts, zip(
                    batch.times, batch.values, qcs, ran, failed)))
        batch_values: list = []
        for batch_row, count in chain(plain_batches, flagged_batches):
            batch_row.append(next_row)
            batch_values += batch_row
            next_row += count
        # no ON CONFLICT: a duplicate here would be a bug, and the group is then not acked
        self._insert_rows("batches (id, station, epoch, seq, key_id, signature, "
                          "signed_sha256, body, topic, adapter, adapter_version, source_name, "
                          "source_stream, source_start, source_end, raw_sha256, clock_synced, "
                          "clock_offset_ms, readings, created_at, received_at, committed_at, "
                          "qc_origin, bundle_id, log_index, context_ref, first_row)",
                          "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                          batch_values)
        self.conn.executemany("INSERT INTO batch_contexts (station, ref, body) VALUES (?,?,?) "
                              "ON CONFLICT DO NOTHING",
                              [(*key, body) for key, body in contexts.items()])
        self._insert_rows("log_leaves (idx, batch_id, committed_by, qc_sha256, hash)",
                          "(?,?,?,?,?)", leaves)
        observations = ("observation_values (batch_id, series, observed_us, value, "
                        "source_flag, qc, qc_ran, qc_failed)")
        self._insert_rows(observations, "(?,?,?,?,NULL,?,?,?)", plain)
        self._insert_rows(observations, "(?,?,?,?,?,?,?,?)", flagged)
        if self.monitoring:
            arrivals.write(self.conn)
        return flags

    def _first_ids(self) -> tuple[int, int, int, int]:
        """The next bundle id, batch id, log index and observation row, in one statement
        (a round trip each on a database server)."""
        return self.conn.execute(
            "SELECT (SELECT coalesce(max(id), 0) + 1 FROM bundles), "
            "(SELECT coalesce(max(id), 0) + 1 FROM batches), "
            f"(SELECT coalesce(max(idx), -1) + 1 FROM log_leaves), {self._next_row}"
        ).fetchone()

    def _insert_rows(self, into: str, row: str, values: list) -> None:
        """Rows given as one flat list of values (sqlite_store.insert_rows: 32 rows an
        INSERT); a backend may load them its own faster way."""
        insert_rows(self.conn, into, row, values)

    def _store_floors(self, floors: dict[tuple[str, str], int]) -> None:
        self.conn.executemany(
            "INSERT INTO replay_floors (station, epoch, floor) VALUES (?,?,?) "
            "ON CONFLICT (station, epoch) DO UPDATE SET floor = CASE WHEN excluded.floor > "
            "replay_floors.floor THEN excluded.floor ELSE replay_floors.floor END",
            [(station, epoch, floor) for (station, epoch), floor in floors.items()])

    def _series_ids(self, station: str,
                    fields: list[tuple[str, str, str, int | None, str | None]]) -> list[int]:
        """The numbers of a station's series (element, unit, source field, period), in the
        order of a batch's field table; a series is made the first time it is seen. A
        station sends the same field table in every batch, so whole tables are remembered.
        Runs inside the commit's transaction."""
        key = (station, tuple(fields))
        found = self._series.get(key)
        if found is None:
            # the station's series in one statement (not one a field: a round trip each on
            # a database server), then the new ones made
            known = {_series_key(*row[1:]): row[0] for row in self.conn.execute(
                "SELECT id, element, unit, source_field, period_s, source_unit FROM series "
                "WHERE station = ?", (station,))}
            found = []
            for field in fields:
                number = known.get(_series_key(*field))
                if number is None:
                    number = known[_series_key(*field)] = self.conn.execute(
                        "INSERT INTO series (station, element, unit, source_field, period_s, "
                        "source_unit) VALUES (?,?,?,?,?,?) RETURNING id",
                        (station, *field)).fetchone()[0]
                found.append(number)
            if len(self._series) >= MAX_CACHED_FIELD_TABLES:  # a station inventing fields
                self._series.clear()
            self._series[key] = found
        return found

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
            self._bit_names[bit] = name
        return bit

    def qc_state(self) -> list[tuple[str, str, str]]:
        return self.conn.execute("SELECT check_name, series, state FROM qc_state").fetchall()

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

    def evicted(self, outboxes: set[tuple[str, str]]
                ) -> dict[tuple[str, str], list[tuple[int, int, int, str]]]:
        found: dict[tuple[str, str], list[tuple[int, int, int, str]]] = {}
        for station, epoch in outboxes:
            found[(station, epoch)] = self.conn.execute(
                "SELECT first_seq, last_seq, gap_id, reason FROM gaps WHERE station = ? AND "
                "epoch = ?", (station, epoch)).fetchall()
        return found


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


def _series_key(element: str, unit: str, source_field: str, period_s: int | None,
                source_unit: str | None) -> tuple:
    """A series' identity as the catalog's unique index sees it (no period is -1, no
    source unit is '')."""
    return (element, unit, source_field, -1 if period_s is None else period_s,
            source_unit or "")


def _bundle_row(number: int, bundle: SignedBundle, utc: "_UTCCache") -> tuple:
    return (number, wire.parse_data_topic(bundle.topic)[1], bundle.topic, bundle.key_id,
            bundle.signature, bundle.digests, utc[bundle.received_at])


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


