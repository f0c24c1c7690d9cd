"""Accounts, API tokens, browser sessions, the address blacklist, failed attempts and the
audit log (docs/access.md), in SQL both backends run. The audit log is appended in a turn
of its own (``_audit_begin``: on SQLite the write lock, on PostgreSQL an advisory lock of
its own, so that readers do not wait for the collector's commits there), committed without
waiting for the disk: ``sync_audit``, which the API calls within half a second, makes the
rows durable (an fsync on every request was most of the access layer's cost)."""

from __future__ import annotations

import json
import re
import sqlite3
import os
from contextlib import contextmanager
from typing import Iterator

from obslink.errors import ConfigError
from obslink.readings import format_utc, now_us
from obslink.sqlite_store import dicts, transaction
from obslink.server.access.audit_chain import FIELDS, GENESIS, row_hash
from obslink.server.access.blacklist import network_of
from obslink.server.access.roles import (STATUSES, check_kind, check_role, check_scopes)
from obslink.server.catalog.datasets import check_classification
from obslink.server.catalog.errors import NoSuchRecordError

ACCOUNT_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_ACCOUNT = ("SELECT name, kind, real_name, role, clearance, status, created_at, updated_at "
            "FROM accounts ")
_TOKEN = ("SELECT id, account, scopes, note, created_at, expires_us, revoked_at "
          "FROM access_tokens ")
# a token with its account, as a request's authentication needs them
_HOLDER = ("SELECT t.id AS token, t.secret_hash, t.scopes, t.expires_us, t.revoked_at, "
           "a.name AS account, a.role, a.clearance, a.status FROM access_tokens t "
           "JOIN accounts a ON a.name = t.account ")
AUDIT_CHUNK = 5000


def _stamp() -> str:
    return format_utc(now_us(), fixed=True)


class SQLiteAccess:
    """Mixed into both catalogs."""

    conn: sqlite3.Connection
    location: str
    _audit_begin = "BEGIN IMMEDIATE"
    # around an audit row's commit: the WAL is not synced at once (sync_audit does it)
    _audit_durability = ("PRAGMA synchronous=NORMAL", "PRAGMA synchronous=FULL")

    # -- accounts --------------------------------------------------------------------------

    def create_account(self, name: str, role: str, clearance: str, kind: str = "personal",
                       real_name: str = "") -> dict:
        if not ACCOUNT_NAME.fullmatch(name):
            raise ConfigError(f"account name {name!r}: use 1 to 64 lower-case letters, digits, "
                              "'.', '_' and '-', starting with a letter or digit")
        check_role(role), check_classification(clearance), check_kind(kind)
        if kind == "personal" and not real_name.strip():
            raise ConfigError(f"account {name}: a personal account needs the real name of "
                              "the person who holds it (--real-name)")
        with transaction(self.conn):
            if self.conn.execute("SELECT 1 FROM accounts WHERE name = ?", (name,)).fetchone():
                raise ConfigError(f"account {name!r} exists already; `obslink account show "
                                  f"{name}` shows it")
            self.conn.execute("INSERT INTO accounts VALUES (?,?,?,?,?,?,?,?)",
                              (name, kind, real_name.strip(), role, clearance, "active",
                               _stamp(), _stamp()))
        return self.account(name)

    def accounts(self) -> list[dict]:
        return dicts(self.conn.execute(_ACCOUNT + "ORDER BY name"))

    def account(self, name: str) -> dict:
        found = dicts(self.conn.execute(_ACCOUNT + "WHERE name = ?", (name,)))
        if not found:
            raise NoSuchRecordError(f"no account {name!r}; `obslink account list` shows them")
        found[0]["tokens"] = dicts(self.conn.execute(
            _TOKEN + "WHERE account = ? ORDER BY created_at, id", (name,)))
        return found[0]

    def update_account(self, name: str, role: str | None = None,
                       clearance: str | None = None, status: str | None = None,
                       real_name: str | None = None) -> dict:
        """Change what is given. A revoked account stays revoked (its name is not given
        out again); revoking one revokes its tokens and ends its sessions."""
        current = self.account(name)
        changes = {key: value for key, value in (("role", role), ("clearance", clearance),
                                                 ("status", status), ("real_name", real_name))
                   if value is not None}
        if role is not None:
            check_role(role)
        if clearance is not None:
            check_classification(clearance)
        if status is not None and status not in STATUSES:
            raise ConfigError(f"status {status!r} is not one of {', '.join(STATUSES)}")
        if current["status"] == "revoked" and changes.get("status", "revoked") != "revoked":
            raise ConfigError(f"account {name} is revoked for good; create a new account")
        with transaction(self.conn):
            if changes:
                self.conn.execute(
                    f"UPDATE accounts SET {', '.join(f'{key} = ?' for key in changes)}, "
                    "updated_at = ? WHERE name = ?", (*changes.values(), _stamp(), name))
            if status == "revoked":
                self.conn.execute("UPDATE access_tokens SET revoked_at = ? WHERE account = ? "
                                  "AND revoked_at IS NULL", (_stamp(), name))
            if status in ("revoked", "suspended") or role is not None:
                self.conn.execute("DELETE FROM access_sessions WHERE token IN (SELECT id FROM "
                                  "access_tokens WHERE account = ?)", (name,))
        return self.account(name)

    # -- tokens and sessions ---------------------------------------------------------------

    def add_token(self, account: str, token_id: str, secret_hash: str,
                  scopes: tuple[str, ...], expires_us: int | None, note: str = "") -> dict:
        holder = self.account(account)
        if holder["status"] != "active":
            raise ConfigError(f"account {account} is {holder['status']}: it gets no tokens")
        scopes = check_scopes(scopes, holder["role"])
        with transaction(self.conn):
            self.conn.execute("INSERT INTO access_tokens VALUES (?,?,?,?,?,?,?,?)",
                              (token_id, account, secret_hash, " ".join(scopes), note,
                               _stamp(), expires_us, None))
        return dicts(self.conn.execute(_TOKEN + "WHERE id = ?", (token_id,)))[0]

    def revoke_token(self, token_id: str) -> dict:
        found = dicts(self.conn.execute(_TOKEN + "WHERE id = ?", (token_id,)))
        if not found:
            raise NoSuchRecordError(f"no token {token_id!r}; `obslink account show NAME` "
                                    "lists an account's tokens")
        with transaction(self.conn):
            self.conn.execute("UPDATE access_tokens SET revoked_at = ? WHERE id = ? AND "
                              "revoked_at IS NULL", (_stamp(), token_id))
            self.conn.execute("DELETE FROM access_sessions WHERE token = ?", (token_id,))
        return dicts(self.conn.execute(_TOKEN + "WHERE id = ?", (token_id,)))[0]

    def token_holder(self, token_id: str) -> dict | None:
        """The token with its account's role, clearance and status (None if unknown)."""
        found = dicts(self.conn.execute(_HOLDER + "WHERE t.id = ?", (token_id,)))
        return found[0] if found else None

    def add_session(self, session_hash: str, token_id: str, csrf: str,
                    expires_us: int) -> None:
        with transaction(self.conn):
            self.conn.execute("DELETE FROM access_sessions WHERE expires_us < ?", (now_us(),))
            self.conn.execute("INSERT INTO access_sessions VALUES (?,?,?,?)",
                              (session_hash, token_id, csrf, expires_us))

    def session_holder(self, session_hash: str) -> dict | None:
        """A browser session's token and account, as token_holder, with the session's
        expiry and CSRF token."""
        found = dicts(self.conn.execute(
            _HOLDER.replace("SELECT ", "SELECT s.expires_us AS session_expires_us, "
                            "s.csrf, ", 1)
            + "JOIN access_sessions s ON s.token = t.id WHERE s.id_hash = ?",
            (session_hash,)))
        return found[0] if found else None

    def end_session(self, session_hash: str) -> None:
        with transaction(self.conn):
            self.conn.execute("DELETE FROM access_sessions WHERE id_hash = ?", (session_hash,))

    # -- blacklist and failed attempts -----------------------------------------------------

    def blacklist(self) -> list[dict]:
        return dicts(self.conn.execute(
            "SELECT network, reason, added_at FROM access_blacklist ORDER BY network"))

    def add_to_blacklist(self, network: str, reason: str) -> str:
        """Refuse requests from an address or network; returns it as kept."""
        network = network_of(network)
        with transaction(self.conn):
            self.conn.execute("INSERT INTO access_blacklist VALUES (?,?,?) ON CONFLICT "
                              "(network) DO UPDATE SET reason = excluded.reason",
                              (network, reason, _stamp()))
        return network

    def remove_from_blacklist(self, network: str) -> None:
        with transaction(self.conn):
            gone = self.conn.execute("DELETE FROM access_blacklist WHERE network = ?",
                                     (network,)).rowcount
        if not gone:
            raise NoSuchRecordError(f"{network} is not on the blacklist; `obslink account "
                                    "blacklist list` shows it")

    def record_failure(self, address: str, at_us: int, forget_before_us: int) -> None:
        """A failed authentication from ``address``; failures older than the window go."""
        with transaction(self.conn):
            self.conn.execute("DELETE FROM access_failures WHERE at_us < ?",
                              (forget_before_us,))
            self.conn.execute("INSERT INTO access_failures VALUES (?, ?)", (address, at_us))

    def failures_since(self, address: str, since_us: int) -> tuple[int, int | None]:
        """(how many, the oldest's time) of the address's failures since ``since_us``."""
        count, oldest = self.conn.execute(
            "SELECT count(*), min(at_us) FROM access_failures WHERE address = ? AND at_us >= ?",
            (address, since_us)).fetchone()
        return count, oldest

    # -- what clearance filters and audit rows need ----------------------------------------

    def dataset_levels(self) -> dict[str, tuple[str, str]]:
        """Every dataset's (station, classification), by dataset id."""
        return {dataset: (station, level) for dataset, station, level in self.conn.execute(
            "SELECT id, station, classification FROM datasets")}

    def classification_of(self, dataset: str) -> str | None:
        found = self.conn.execute("SELECT classification FROM datasets WHERE id = ?",
                                  (dataset,)).fetchone()
        return found[0] if found else None

    def series_stations(self, series: list[int]) -> dict[int, str]:
        """The station of each series id given."""
        found: dict[int, str] = {}
        for start in range(0, len(series), 500):
            part = series[start:start + 500]
            found.update(self.conn.execute(
                f"SELECT id, station FROM series WHERE id IN ({','.join('?' * len(part))})",
                part))
        return found

    # -- the audit log ---------------------------------------------------------------------

    @contextmanager
    def _audit_turn(self):
        relaxed, usual = self._audit_durability
        if relaxed:
            self.conn.execute(relaxed)
        try:
            self.conn.execute(self._audit_begin)
            try:
                yield
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
        finally:
            if usual:
                self.conn.execute(usual)

    def sync_audit(self) -> None:
        """Make every audit row committed so far durable: fsync the write-ahead log (a
        later FULL commit, such as the collector's next, would do it too)."""
        try:
            handle = os.open(f"{self.location}-wal", os.O_RDONLY)
        except FileNotFoundError:  # checkpointed and removed: on disk already
            return
        try:
            os.fsync(handle)
        finally:
            os.close(handle)

    def append_audit(self, entry: dict) -> dict:
        """Append a row (the keys of audit_chain.FIELDS but seq) to the chain; returns it
        with its seq and hash."""
        row = {name: entry.get(name) for name in FIELDS}
        row.update(datasets=json.dumps(entry.get("datasets") or {}, sort_keys=True),
                   detail=json.dumps(entry.get("detail") or {}, sort_keys=True),
                   rows=int(entry.get("rows") or 0), bytes=int(entry.get("bytes") or 0),
                   target=entry.get("target") or "", at_us=entry.get("at_us") or now_us())
        with self._audit_turn():
            last = self.conn.execute(
                "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
            row["seq"], row["prev_hash"] = (last[0] + 1, last[1]) if last else (1, GENESIS)
            row["hash"] = row_hash(row["prev_hash"], row)
            names = (*FIELDS, "prev_hash", "hash")
            self.conn.execute(f"INSERT INTO audit_log ({', '.join(names)}) VALUES "
                              f"({','.join('?' * len(names))})",
                              [row[name] for name in names])
        return row

    def audit_rows(self, after_seq: int = 0, account: str | None = None,
                   since_us: int | None = None, until_us: int | None = None,
                   action: str | None = None, limit: int | None = None
                   ) -> Iterator[dict]:
        """Audit rows in seq order after ``after_seq``, filtered, a chunk at a time; their
        datasets and detail as stored (JSON text)."""
        where, params = ["seq > ?"], [after_seq]
        for condition, value in (("account = ?", account), ("at_us >= ?", since_us),
                                 ("at_us <= ?", until_us), ("action = ?", action)):
            if value is not None:
                where.append(condition)
                params.append(value)
        left = limit
        while left is None or left > 0:
            size = AUDIT_CHUNK if left is None else min(left, AUDIT_CHUNK)
            chunk = dicts(self.conn.execute(
                f"SELECT * FROM audit_log WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?",
                (*params, size)))
            yield from chunk
            if len(chunk) < size:
                return
            params[0] = chunk[-1]["seq"]
            left = None if left is None else left - len(chunk)
