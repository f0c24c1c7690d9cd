"""The SQLite catalog's stored batches as records: what provenance and `catalog verify`
read (a batch with its bundle, leaf and key; its observation rows)."""

from __future__ import annotations

import sqlite3
from typing import Iterator

from obslink.sqlite_store import dicts

_BATCH = ("SELECT b.id, b.station, b.epoch, b.seq, b.key_id, b.signature, b.signed_sha256, "
          "b.body, b.topic, b.adapter, b.adapter_version, b.source_name, b.source_stream, "
          "b.source_start, b.source_end, b.raw_sha256, b.clock_synced, b.clock_offset_ms, "
          "b.readings, b.created_at, b.received_at, b.committed_at, b.qc_origin, "
          "b.first_row, u.digests AS bundle_digests, b.log_index, "
          "l.committed_by, l.qc_sha256, l.hash AS leaf_hash, c.body AS context "
          "FROM batches b LEFT JOIN bundles u ON u.id = b.bundle_id "
          "LEFT JOIN batch_contexts c ON c.station = b.station AND c.ref = b.context_ref "
          "LEFT JOIN log_leaves l ON l.idx = b.log_index ")

_ROWS = ("SELECT v.id, v.batch_id, s.element, s.unit, s.source_field, s.period_s, "
         "s.source_unit, v.observed_us, v.value, v.source_flag, v.qc, v.qc_ran, v.qc_failed "
         "FROM observation_values v JOIN series s ON s.id = v.series ")


def _blobs(record: dict) -> dict:
    for key in ("signature", "body", "bundle_digests", "qc_sha256", "leaf_hash", "context"):
        if record.get(key) is not None:
            record[key] = bytes(record[key])
    return record


class SQLiteRecords:
    """Mixed into SQLiteCatalog."""

    conn: sqlite3.Connection

    def batch_context(self, station: str, ref: bytes) -> bytes | None:
        """A station's v2 batch context by its reference (docs/protocol.md)."""
        row = self.conn.execute("SELECT body FROM batch_contexts WHERE station = ? AND "
                                "ref = ?", (station, ref)).fetchone()
        return None if row is None else bytes(row[0])

    def batch_record(self, station: str, epoch: str, seq: int) -> dict | None:
        found = dicts(self.conn.execute(_BATCH + "WHERE b.station = ? AND b.epoch = ? AND "
                                        "b.seq = ?", (station, epoch, seq)))
        return _blobs(found[0]) if found else None

    def batch_records(self, after_id: int = 0, limit: int = 1000) -> list[dict]:
        """Batches in commit order, ``limit`` at a time from the one after ``after_id``."""
        return [_blobs(record) for record in dicts(self.conn.execute(
            _BATCH + "WHERE b.id > ? ORDER BY b.id LIMIT ?", (after_id, limit)))]

    def observation_rows(self, first: int, last: int) -> list[tuple]:
        """Rows with ids ``first`` to ``last``: (id, batch id, element, unit, source
        field, period, source unit, observed µs, value, source flag, qc, ran, failed)."""
        return self.conn.execute(_ROWS + "WHERE v.id BETWEEN ? AND ? ORDER BY v.id",
                                 (first, last)).fetchall()

    def stray_rows(self) -> Iterator[tuple[int, int]]:
        """(row id, batch id) of observation rows outside their batch's rows, or of a
        batch the catalog does not hold."""
        yield from self.conn.execute(
            "SELECT v.id, v.batch_id FROM observation_values v LEFT JOIN batches b ON "
            "b.id = v.batch_id WHERE b.id IS NULL OR b.first_row IS NULL OR v.id < "
            "b.first_row OR v.id >= b.first_row + b.readings ORDER BY v.id")

    def log_leaf_rows(self) -> Iterator[tuple[int, int | None, int | None, bytes]]:
        """(index, batch id, product id, hash) of every leaf, in order (a leaf is a
        batch's or a product's)."""
        for index, batch_id, product, leaf in self.conn.execute(
                "SELECT idx, batch_id, product_id, hash FROM log_leaves ORDER BY idx"):
            yield index, batch_id, product, bytes(leaf)

    def key_record(self, key_id: str) -> dict | None:
        found = dicts(self.conn.execute(
            "SELECT station, key_id, public_key, status, created_at, revoked_at, retire_at "
            "FROM station_keys WHERE key_id = ?", (key_id,)))
        if not found:
            return None
        found[0]["public_key"] = bytes(found[0]["public_key"])
        return found[0]
