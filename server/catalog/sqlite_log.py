"""The SQLite catalog's transparency log: leaves (written with each commit by
sqlite_ingest), signed tree heads, inclusion and consistency proofs."""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from itertools import chain

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from obslink.errors import StorageError
from obslink.keys import key_id, public_bytes
from obslink.readings import now_us
from obslink.sqlite_store import dicts, transaction
from obslink.server.catalog import merkle
from obslink.server.catalog.log_entries import leaf_hash, qc_sha256, tree_head_message

log = logging.getLogger(__name__)

_HEAD_COLUMNS = "id, size, root, signed_at, key_id, public_key, signature"


class SQLiteLog:
    """Mixed into SQLiteCatalog."""

    conn: sqlite3.Connection

    def _init_log(self) -> None:
        self._frontier = merkle.Frontier()  # of the leaves read so far, to sign heads fast
        self._log_batches_without_leaves()

    def tree_size(self) -> int:
        return self.conn.execute("SELECT coalesce(max(idx), -1) + 1 FROM log_leaves"
                                 ).fetchone()[0]

    def leaf_hashes(self, start: int = 0, stop: int | None = None) -> list[bytes]:
        stop = self.tree_size() if stop is None else stop
        return [bytes(h) for (h,) in self.conn.execute(
            "SELECT hash FROM log_leaves WHERE idx >= ? AND idx < ? ORDER BY idx",
            (start, stop))]

    def tree_root(self) -> tuple[int, bytes]:
        """(size, root) of the log now: the frontier kept goes on from the leaves it has
        seen, so signing a head does not read the whole log again."""
        now = self.tree_size()
        if self._frontier.size > now:  # the log was rebuilt under us: start again
            self._frontier = merkle.Frontier()
        self._frontier.extend(self.leaf_hashes(self._frontier.size, now))
        return now, self._frontier.root()

    def sign_tree_head(self, key: Ed25519PrivateKey) -> dict:
        """Sign the log's tree head now, store it and return it."""
        size, root = self.tree_root()
        signed_at = now_us()
        public = public_bytes(key.public_key())
        signature = key.sign(tree_head_message(size, root, signed_at))
        with transaction(self.conn):
            head_id = self.conn.execute(
                "INSERT INTO tree_heads (size, root, signed_at, key_id, public_key, signature) "
                "VALUES (?,?,?,?,?,?) RETURNING id",
                (size, root, signed_at, key_id(key.public_key()), public, signature)
            ).fetchone()[0]
        return self.tree_head(head_id)

    def tree_head(self, head_id: int) -> dict:
        found = dicts(self.conn.execute(f"SELECT {_HEAD_COLUMNS} FROM tree_heads WHERE id = ?",
                                        (head_id,)))
        if not found:
            raise StorageError(f"no tree head {head_id}; `obslink catalog tree-head` lists "
                               "the newest")
        return found[0]

    def tree_heads(self, limit: int = 50) -> list[dict]:
        """The newest signed tree heads, newest first."""
        return dicts(self.conn.execute(
            f"SELECT {_HEAD_COLUMNS} FROM tree_heads ORDER BY id DESC LIMIT ?", (limit,)))

    def all_tree_heads(self) -> list[dict]:
        return dicts(self.conn.execute(f"SELECT {_HEAD_COLUMNS} FROM tree_heads ORDER BY id"))

    def head_covering(self, index: int) -> dict | None:
        """The newest signed tree head whose tree holds leaf ``index``."""
        found = dicts(self.conn.execute(
            f"SELECT {_HEAD_COLUMNS} FROM tree_heads WHERE size > ? ORDER BY id DESC LIMIT 1",
            (index,)))
        return found[0] if found else None

    def _log_batches_without_leaves(self) -> None:
        """Batches committed before the catalog had a log get their leaves, in the order
        they were committed, once (committed_by ""), and their first observation row; a
        collector of this version writes both in the transaction that stores the batch."""
        if self.conn.execute("SELECT 1 FROM log_leaves LIMIT 1").fetchone() or \
                not self.conn.execute("SELECT 1 FROM batches LIMIT 1").fetchone():
            return
        log.warning("adding the %d batches committed so far to the catalog's transparency "
                    "log (once)", self.conn.execute("SELECT count(*) FROM batches"
                                                    ).fetchone()[0])
        names = dict(self.conn.execute("SELECT bit, name FROM qc_checks"))
        origins = dict(self.conn.execute("SELECT id, qc_origin FROM batches"))
        digests, first_rows = {}, {}
        # a batch's rows are consecutive: one pass in row order sees each batch's once
        batch_id, columns = None, ([], [], [])
        rows = self.conn.execute("SELECT id, batch_id, qc, qc_ran, qc_failed FROM "
                                 "observation_values ORDER BY id")
        for row_id, owner, qc, ran, failed in chain(rows, [(None, None, 0, 0, 0)]):
            if owner != batch_id:
                if batch_id is not None:
                    digests[batch_id] = qc_sha256(origins.get(batch_id), names, *columns)
                batch_id, columns = owner, ([], [], [])
                first_rows.setdefault(owner, row_id)
            columns[0].append(qc)
            columns[1].append(ran)
            columns[2].append(failed)
        with transaction(self.conn):
            leaves = []  # read a batch at a time: the bodies of a large catalog fill memory
            for index, (batch_id, *row) in enumerate(self.conn.execute(
                    "SELECT b.id, b.topic, b.key_id, b.signature, b.body, "
                    "u.digests, b.received_at, b.committed_at, b.qc_origin FROM batches b "
                    "LEFT JOIN bundles u ON u.id = b.bundle_id ORDER BY b.id")):
                digest = digests.get(batch_id) or qc_sha256(row[7], names, [], [], [])
                leaves.append((index, batch_id, "", digest, leaf_hash(
                    row[0], row[1], bytes(row[2]), hashlib.sha256(row[3]).digest(),
                    None if row[4] is None else hashlib.sha256(row[4]).digest(), row[5],
                    row[6], "", digest)))
            self.conn.executemany("INSERT INTO log_leaves (idx, batch_id, committed_by, "
                                  "qc_sha256, hash) VALUES (?,?,?,?,?)", leaves)
            self.conn.executemany("UPDATE batches SET log_index = ? WHERE id = ?",
                                  [(leaf[0], leaf[1]) for leaf in leaves])
            self.conn.executemany("UPDATE batches SET first_row = ? WHERE id = ?",
                                  [(first, batch) for batch, first in first_rows.items()
                                   if batch is not None])
