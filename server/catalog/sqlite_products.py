"""The SQLite catalog's products (docs/products.md): a record per product the product store
holds, with the signed manifest it was verified against; and the products stations lost."""

from __future__ import annotations

import hashlib
import json
import sqlite3

from obslink import wire
from obslink.readings import format_utc, now_us
from obslink.sqlite_store import dicts, transaction
from obslink.server.catalog.errors import no_product
from obslink.server.catalog.identifiers import RADAR, parse_identifier, product_id
from obslink.server.catalog.log_entries import product_leaf_hash

_COLUMNS = ("id, station, epoch, number, name, format, format_version, size, sha256, "
            "chunk_bytes, chunks, observed_us, metadata, topic, key_id, received_at, "
            "committed_at, committed_by, log_index")


_PREFIXED = ", ".join(f"p.{column.strip()}" for column in _COLUMNS.split(","))


def _record(row: dict) -> dict:
    row["identifier"] = product_id(row["station"], row["epoch"], row["number"])
    row["metadata"] = json.loads(row["metadata"])
    return row


class SQLiteProducts:
    """Mixed into SQLiteCatalog."""

    conn: sqlite3.Connection
    committed_by: str

    def register_product(self, manifest: wire.Manifest, body: bytes, topic: str, key_id: str,
                         signature: bytes, received_at: int) -> str:
        """Record a product the store now holds whole (idempotent on its identity); the
        station's radar dataset is made with its first product. Returns its identifier."""
        now = format_utc(now_us(), fixed=True)
        received = format_utc(received_at, fixed=True)
        committed_by = getattr(self, "committed_by", "") or ""
        with transaction(self.conn):
            name = self.conn.execute("SELECT name FROM stations WHERE id = ?",
                                     (manifest.station,)).fetchone()
            self._add_dataset_in(self.conn, manifest.station, name[0] if name else None, RADAR)
            added = self.conn.execute(
                "INSERT INTO products (station, epoch, number, name, format, format_version, "
                "size, sha256, chunk_bytes, chunks, observed_us, metadata, manifest, topic, "
                "key_id, signature, received_at, committed_at, committed_by) VALUES "
                "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (station, epoch, number) "
                "DO NOTHING RETURNING id",
                (manifest.station, manifest.epoch, manifest.product, manifest.name,
                 manifest.format, manifest.format_version, manifest.size,
                 manifest.sha256.hex(), manifest.chunk_bytes, manifest.chunks,
                 int(manifest.metadata.get("start_us") or manifest.created),
                 json.dumps(manifest.metadata), body, topic, key_id, signature, received, now,
                 committed_by)).fetchone()
            if added is not None:
                self._log_product(added[0], topic, key_id, signature, body, received, now,
                                  committed_by)
        return product_id(manifest.station, manifest.epoch, manifest.product)

    def _log_product(self, row, topic, key_id, signature, body, received, committed,
                     committed_by) -> None:
        """The new product's (row ``row``) leaf, in the transaction that registers it."""
        index = self.conn.execute("SELECT coalesce(max(idx), -1) + 1 FROM log_leaves"
                                  ).fetchone()[0]
        leaf = product_leaf_hash(topic, key_id, signature, hashlib.sha256(body).digest(),
                                 received, committed, committed_by)
        self.conn.execute("INSERT INTO log_leaves (idx, product_id, committed_by, qc_sha256, "
                          "hash) VALUES (?,?,?,?,?)", (index, row, committed_by, b"", leaf))
        self.conn.execute("UPDATE products SET log_index = ? WHERE id = ?", (index, row))

    def product_registered(self, station: str, epoch: str, number: int) -> bool:
        return self.conn.execute("SELECT 1 FROM products WHERE station = ? AND epoch = ? AND "
                                 "number = ?", (station, epoch, number)).fetchone() is not None

    def products(self, station: str | None = None, start_us: int | None = None,
                 end_us: int | None = None, after: int = 0, limit: int = 100) -> list[dict]:
        """Products in the order they were registered, after record ``after`` (a cursor)."""
        where, params = ["id > ?"], [after]
        if station:
            where.append("station = ?")
            params.append(station)
        if start_us is not None:
            where.append("observed_us >= ?")
            params.append(start_us)
        if end_us is not None:
            where.append("observed_us <= ?")
            params.append(end_us)
        return [_record(row) for row in dicts(self.conn.execute(
            f"SELECT {_COLUMNS} FROM products WHERE {' AND '.join(where)} ORDER BY id "
            "LIMIT ?", (*params, limit)))]

    def product(self, identifier: str) -> dict:
        """A product's record by its identifier, with the signed manifest."""
        parsed = parse_identifier(identifier)
        found = dicts(self.conn.execute(
            f"SELECT {_PREFIXED}, p.manifest, p.signature, l.hash AS leaf_hash FROM products p "
            "LEFT JOIN log_leaves l ON l.idx = p.log_index WHERE p.station = ? AND "
            "p.epoch = ? AND p.number = ?", (parsed.station, parsed.epoch, parsed.number))) \
            if parsed.kind == "product" else []
        if not found:
            raise no_product(identifier)
        record = _record(found[0])
        record["manifest"], record["signature"] = bytes(record["manifest"]), \
            bytes(record["signature"])
        if record["leaf_hash"] is not None:
            record["leaf_hash"] = bytes(record["leaf_hash"])
        return record

    def product_records(self, after: int = 0, limit: int = 1000) -> list[dict]:
        """Stored products with their signed manifests and leaves, for `catalog verify`."""
        found = dicts(self.conn.execute(
            f"SELECT {_PREFIXED}, p.manifest, p.signature, l.hash AS leaf_hash FROM products p "
            "LEFT JOIN log_leaves l ON l.idx = p.log_index WHERE p.id > ? ORDER BY p.id "
            "LIMIT ?", (after, limit)))
        for record in found:
            _record(record)
            for name in ("manifest", "signature", "leaf_hash"):
                if record[name] is not None:
                    record[name] = bytes(record[name])
        return found

    def record_product_gap(self, station: str, epoch: str, gap: dict,
                           received_at: int) -> None:
        with transaction(self.conn):
            self.conn.execute(
                "INSERT INTO product_gaps (station, epoch, gap, name, size, observed_us, "
                "reason, detail, at, received_at) VALUES (?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (station, epoch, gap) DO NOTHING",
                (station, epoch, gap["id"], gap["name"], gap["size"], gap.get("observed_us"),
                 gap["reason"], gap["detail"], gap["at"],
                 format_utc(received_at, fixed=True)))

    def product_gaps(self, station: str | None = None) -> list[dict]:
        where, params = ("WHERE station = ? ", (station,)) if station else ("", ())
        return dicts(self.conn.execute(
            "SELECT station, epoch, gap, name, size, observed_us, reason, detail, at, "
            f"received_at FROM product_gaps {where}ORDER BY id", params))
