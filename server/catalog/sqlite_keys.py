"""The SQLite catalog's station keys: registration, rotation with a grace period,
revocation, and the version number the collector watches to look keys up again."""

from __future__ import annotations

import sqlite3

from obslink.errors import StorageError
from obslink.readings import format_utc, now_us
from obslink.sqlite_store import dicts, transaction
from obslink.server.catalog.errors import KeyInUseError, KeyRevokedError
from obslink.server.catalog.outcomes import AcceptedKey


class SQLiteKeys:
    """Mixed into SQLiteCatalog, whose ``conn`` it writes through."""

    conn: sqlite3.Connection

    def _init_keys(self) -> None:
        self._keys_version: tuple | None = None  # keys_version()'s last count, made at
        self._data_version: int | None = None  # this PRAGMA data_version

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

    def keys(self, station: str | None = None) -> list[dict]:
        where, params = ("WHERE station = ?", (station,)) if station else ("", ())
        cursor = self.conn.execute(
            f"SELECT station, key_id, status, created_at, revoked_at, retire_at FROM "
            f"station_keys {where} ORDER BY station, created_at", params)
        keys, now = dicts(cursor), now_us()
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

