"""The SQLite catalog's station records, enrolment tokens, the log of enrolment attempts and
broker accounts (passwords derive as server/catalog/broker_passwords.py says). Where the
broker does not know an account yet (it was made or changed after the last
``broker-config``), the enrolment answer says so and names the command to run.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import sqlite3
from pathlib import Path

from obslink.keys import publish_secret_once
from obslink.errors import StorageError
from obslink.readings import format_utc, now_us
from obslink.sqlite_store import dicts, transaction
from obslink.server.catalog.broker_passwords import (BROKER_SECRET_FILE, COLLECTOR_ACCOUNT,
                                                     account_secret, derive_password,
                                                     mosquitto_password_hash)
from obslink.server.catalog.errors import (EnrolmentError, KeyInUseError, KeyRevokedError,
                                           StationExistsError)
from obslink.server.catalog.outcomes import BrokerAccount, Station

log = logging.getLogger(__name__)

STATION_COLUMNS = ("name", "network", "latitude", "longitude", "interval_seconds")


class SQLiteAdmin:
    """Mixed into SQLiteCatalog, whose ``conn`` it writes through."""

    conn: sqlite3.Connection
    path: Path
    #: what the database raises for a row that breaks a UNIQUE constraint
    integrity_errors: tuple[type[Exception], ...] = (sqlite3.IntegrityError,)

    def add_station(self, station: Station, public_key: bytes | None, key_id: str | None
                    ) -> None:
        """Register a new station, with its key unless it will enrol for one (operators use
        register, which also makes its broker account)."""
        with transaction(self.conn) as conn:
            try:
                conn.execute(
                    "INSERT INTO stations (id, name, network, latitude, longitude, "
                    "interval_seconds, created_at) VALUES (?,?,?,?,?,?,?)",
                    (station.id, station.name, station.network, station.latitude,
                     station.longitude, station.interval_seconds,
                     format_utc(now_us(), fixed=True)))
            except self.integrity_errors:
                raise StationExistsError(f"station {station.id} is registered already; "
                                         "`obslink collector station update` changes it"
                                         ) from None
            if public_key is not None:
                self.add_key_in(conn, station.id, public_key, key_id)
            self._add_dataset_in(conn, station.id, station.name)

    def station_exists(self, station: str) -> bool:
        return self.conn.execute("SELECT 1 FROM stations WHERE id = ?",
                                 (station,)).fetchone() is not None

    def register(self, station: Station, public_key: bytes | None = None,
                 key_id: str | None = None) -> None:
        """A new station, with its key unless it enrols for one, and its broker account."""
        found = self.find(station.id)
        if found is not None:
            if found["retired_at"]:
                raise StationExistsError(
                    f"station {station.id} was retired at {found['retired_at']}; its id stays "
                    "with its data and identifiers and is not registered again")
            raise StationExistsError(
                f"station {station.id} is registered already (since {found['created_at']}); "
                f"change its record with `obslink collector station update {station.id}`, "
                f"issue an enrolment token with `obslink collector token issue {station.id}`")
        self.add_station(station, public_key, key_id)
        self._ensure_account(station.id)

    def find(self, station: str) -> dict | None:
        row = self.conn.execute("SELECT * FROM stations WHERE id = ?", (station,))
        found = dicts(row)
        return found[0] if found else None

    def stations(self, include_retired: bool = False) -> list[dict]:
        where = "" if include_retired else "WHERE retired_at IS NULL"
        return dicts(self.conn.execute(f"SELECT * FROM stations {where} ORDER BY id"))

    def show(self, station: str) -> dict:
        """The record with its keys, tokens, broker account, enrolment attempts and what
        the catalog holds of it."""
        record = self.get(station)
        batches, last = self.conn.execute(
            "SELECT count(*), max(committed_at) FROM batches WHERE station = ?",
            (station,)).fetchone()
        account = self.conn.execute(
            "SELECT username, generation, updated_at FROM broker_accounts WHERE station = ?",
            (station,)).fetchone()
        return dict(record, status="retired" if record["retired_at"] else "active",
                    keys=self.keys(station), tokens=self.tokens(station),
                    broker_account=None if account is None else {
                        "username": account[0], "generation": account[1],
                        "updated_at": account[2], "broker_knows_it": self._broker_knows(
                            account[2])},
                    enrolment_attempts=self.enrolment_attempts(station, limit=10),
                    batches=batches, last_committed_at=last)

    def update(self, station: str, public_key: bytes | None = None,
               key_id: str | None = None, **changes) -> dict:
        """Change the given fields only (None: unchanged); add a key if one is given."""
        unknown = set(changes) - set(STATION_COLUMNS)
        if unknown:
            raise ValueError(f"not a station field: {', '.join(sorted(unknown))}")
        record = self.get(station)
        if record["retired_at"]:
            raise StationExistsError(f"station {station} was retired at "
                                     f"{record['retired_at']}; its record is kept as it was")
        given = {column: value for column, value in changes.items() if value is not None}
        with transaction(self.conn) as conn:
            if given:
                conn.execute(f"UPDATE stations SET {', '.join(f'{c} = ?' for c in given)} "
                             "WHERE id = ?", (*given.values(), station))
        if public_key is not None:
            self.add_key(station, public_key, key_id)
        return self.get(station)

    def retire(self, station: str) -> dict:
        """The station reports no more: its keys are revoked, its tokens and broker account
        withdrawn; its record, data and identifiers stay."""
        record = self.get(station)
        if record["retired_at"]:
            return record
        now = format_utc(now_us(), fixed=True)
        with transaction(self.conn) as conn:
            conn.execute("UPDATE stations SET retired_at = ? WHERE id = ?", (now, station))
            conn.execute("UPDATE station_keys SET status = 'revoked', revoked_at = ? WHERE "
                         "station = ? AND status != 'revoked'", (now, station))
            conn.execute("UPDATE enrolment_tokens SET revoked_at = ? WHERE station = ? AND "
                         "used_at IS NULL AND revoked_at IS NULL", (now, station))
            conn.execute("DELETE FROM broker_accounts WHERE station = ?", (station,))
        self.keys_changed()
        return self.get(station)

    def issue_token(self, station: str, valid_s: int) -> tuple[str, int]:
        """A one-time token that lets a gateway bind its key to ``station``; only its hash
        is kept. The station's earlier tokens not yet used stop working: one lives at a
        time. Returns (token, expiry in µs)."""
        record = self.get(station)
        if record["retired_at"]:
            raise StationExistsError(f"station {station} was retired at "
                                     f"{record['retired_at']}; it enrols no more")
        token = secrets.token_hex(20)  # 160 bits; hex never starts with "-" (argparse would
        # take it for an option on the gateway's command line)
        now = now_us()
        expires = now + valid_s * 1_000_000
        with transaction(self.conn) as conn:
            conn.execute("UPDATE enrolment_tokens SET revoked_at = ? WHERE station = ? AND "
                         "used_at IS NULL AND revoked_at IS NULL",
                         (format_utc(now, fixed=True), station))
            conn.execute("INSERT INTO enrolment_tokens (token_sha256, station, created_at, "
                         "expires_at) VALUES (?,?,?,?)",
                         (_token_hash(token), station, format_utc(now, fixed=True), expires))
        return token, expires

    def tokens(self, station: str | None = None) -> list[dict]:
        """Tokens with their status: live, used, expired or revoked. A token is shown by the
        first digits of its hash (its id): the token itself is never kept."""
        where, params = ("WHERE station = ?", (station,)) if station else ("", ())
        rows = dicts(self.conn.execute(
            f"SELECT substr(token_sha256, 1, 12) AS token_id, station, created_at, "
            f"expires_at, used_at, key_id, revoked_at FROM enrolment_tokens {where} "
            f"ORDER BY created_at DESC", params))
        now = now_us()
        for row in rows:
            row["status"] = ("used" if row["used_at"] else "revoked" if row["revoked_at"]
                             else "expired" if now > row["expires_at"] else "live")
            row["expires_at"] = format_utc(row["expires_at"], fixed=True)
        return rows

    def revoke_tokens(self, station: str) -> int:
        """Withdraw the station's live token; returns how many were withdrawn (0 or 1)."""
        self.get(station)
        with transaction(self.conn) as conn:
            return conn.execute(
                "UPDATE enrolment_tokens SET revoked_at = ? WHERE station = ? AND used_at IS "
                "NULL AND revoked_at IS NULL AND expires_at >= ?",
                (format_utc(now_us(), fixed=True), station, now_us())).rowcount

    def enrol(self, token: str, public_key: bytes, key_id: str,
              client: str | None = None) -> Station:
        """Bind ``public_key`` to the token's station, once. Raises EnrolmentError. Every
        attempt, granted or refused, is logged and kept (``enrolment_attempts``)."""
        try:
            with transaction(self.conn) as conn:
                station = self._take_token(conn, token, key_id)
                try:
                    self.add_key_in(conn, station, public_key, key_id)
                except (KeyInUseError, KeyRevokedError) as exc:
                    raise EnrolmentError("key-in-use", f"{exc}; the token was not used",
                                         station) from None
                self._log_attempt(conn, station, key_id, client, "granted", None,
                                  f"key {key_id} bound to station {station}")
                row = conn.execute("SELECT id, network, name, latitude, longitude, "
                                   "interval_seconds FROM stations WHERE id = ?",
                                   (station,)).fetchone()
        except EnrolmentError as exc:
            with transaction(self.conn) as conn:
                self._log_attempt(conn, exc.station, key_id, client, "refused", exc.reason,
                                  str(exc))
            log.warning("enrolment refused (%s) for key %s from %s: %s", exc.reason, key_id,
                        client or "?", exc)
            raise
        log.info("enrolment granted: key %s bound to station %s (from %s)", key_id,
                 station, client or "?")
        self.keys_changed()
        return Station(*row)

    def _take_token(self, conn, token: str, key_id: str) -> str:
        row = conn.execute("SELECT station, expires_at, used_at, revoked_at FROM "
                           "enrolment_tokens WHERE token_sha256 = ?",
                           (_token_hash(token),)).fetchone()
        if row is None:
            raise EnrolmentError("invalid", "the enrolment token is not valid; check it or "
                                 "ask the operator for a new one")
        station, expires, used, revoked = row
        if used is not None:
            raise EnrolmentError("used", f"the enrolment token was already used ({used}); "
                                 "tokens work once: ask the operator for a new one", station)
        if revoked is not None:
            raise EnrolmentError("revoked", f"the enrolment token was withdrawn at {revoked} "
                                 "(a newer token replaced it, or the station was retired); "
                                 "ask the operator for the current one", station)
        if now_us() > expires:
            raise EnrolmentError("expired", "the enrolment token expired at "
                                 f"{format_utc(expires, fixed=True)}; ask the operator for a "
                                 "new one", station)
        status = conn.execute("SELECT station, status, revoked_at FROM station_keys WHERE "
                              "key_id = ?", (key_id,)).fetchone()
        if status is not None and status[1] != "active":
            raise EnrolmentError(
                "key-revoked", f"key {key_id} was {status[1]}"
                + (f" at {status[2]}" if status[2] else "") + "; a key that stopped being "
                "valid is never enrolled again. Make a new key on the gateway (move "
                "station.key away and run `obslink agent enrol` again: it makes one) and use "
                "this token with it; the token was not used", station)
        conn.execute("UPDATE enrolment_tokens SET used_at = ?, key_id = ? WHERE "
                     "token_sha256 = ?", (format_utc(now_us(), fixed=True), key_id,
                                          _token_hash(token)))
        return station

    def _log_attempt(self, conn, station, key_id, client, outcome, reason, detail) -> None:
        conn.execute("INSERT INTO enrolment_attempts (at, station, key_id, client, outcome, "
                     "reason, detail) VALUES (?,?,?,?,?,?,?)",
                     (format_utc(now_us(), fixed=True), station, key_id, client, outcome,
                      reason, detail))

    def enrolment_attempts(self, station: str | None = None, limit: int = 50) -> list[dict]:
        where, params = ("WHERE station = ?", (station,)) if station else ("", ())
        return dicts(self.conn.execute(
            f"SELECT at, station, key_id, client, outcome, reason, detail FROM "
            f"enrolment_attempts {where} ORDER BY id DESC LIMIT ?", (*params, limit)))

    def broker_account(self, station: str) -> BrokerAccount:
        """The station's broker account: the same password every time it is asked for."""
        generation, updated = self._ensure_account(station)
        return BrokerAccount(station, self._derive(station, generation),
                             self._broker_knows(updated))

    def new_broker_password(self, station: str) -> BrokerAccount:
        """A new generation of the station's password (the old one stops working at the
        broker's next reload)."""
        self.get(station)
        generation, _updated = self._ensure_account(station)
        return self._store_account(station, generation + 1)

    def collector_password(self) -> str:
        """A new random password for the collector's own account (only its hash kept)."""
        password = secrets.token_hex(20)
        now = format_utc(now_us(), fixed=True)
        with transaction(self.conn) as conn:
            conn.execute("INSERT INTO broker_accounts (username, station, password_hash, "
                         "created_at, updated_at) VALUES (?,NULL,?,?,?) ON CONFLICT "
                         "(username) DO UPDATE SET password_hash = excluded.password_hash, "
                         "updated_at = excluded.updated_at",
                         (COLLECTOR_ACCOUNT, mosquitto_password_hash(password), now, now))
        return password

    def broker_accounts(self) -> list[tuple[str, str]]:
        """(username, Mosquitto password hash) of every account."""
        return self.conn.execute("SELECT username, password_hash FROM broker_accounts "
                                 "ORDER BY username").fetchall()

    def record_broker_config(self, directory: Path) -> None:
        """`broker-config` wrote every account as it is now into ``directory``."""
        with transaction(self.conn) as conn:
            conn.execute("INSERT INTO broker_configs (directory, written_at) VALUES (?, ?)",
                         (str(directory), format_utc(now_us(), fixed=True)))

    def closed_broker(self) -> bool:
        """Whether `broker-config` was ever run for this catalog."""
        return self.conn.execute("SELECT 1 FROM broker_configs LIMIT 1").fetchone() is not None

    def _ensure_account(self, station: str) -> tuple[int, str]:
        """(generation, updated_at) of the station's derived account, made if missing (or
        derived from now on, for an account made before passwords were derived)."""
        row = self.conn.execute("SELECT generation, updated_at FROM broker_accounts WHERE "
                                "username = ?", (station,)).fetchone()
        if row is not None and row[0] is not None:
            return row[0], row[1]
        account = self._store_account(station, 1)
        return 1, self.conn.execute("SELECT updated_at FROM broker_accounts WHERE username = "
                                    "?", (account.username,)).fetchone()[0]

    def _store_account(self, station: str, generation: int) -> BrokerAccount:
        password = self._derive(station, generation)
        now = format_utc(now_us(), fixed=True)
        with transaction(self.conn) as conn:
            conn.execute("INSERT INTO broker_accounts (username, station, password_hash, "
                         "created_at, generation, updated_at) VALUES (?,?,?,?,?,?) ON "
                         "CONFLICT (username) DO UPDATE SET password_hash = "
                         "excluded.password_hash, generation = excluded.generation, "
                         "updated_at = excluded.updated_at",
                         (station, station, mosquitto_password_hash(password), now,
                          generation, now))
        return BrokerAccount(station, password, False)

    def _broker_knows(self, updated_at: str | None) -> bool:
        written = self.conn.execute("SELECT max(written_at) FROM broker_configs").fetchone()[0]
        return written is not None and updated_at is not None and written >= updated_at

    def _derive(self, station: str, generation: int) -> str:
        return derive_password(self.broker_secret(), station, generation)

    def broker_secret(self, create: bool = True) -> bytes | None:
        """The secret stations' broker passwords derive from: a file beside the catalog,
        made on first use (None when it does not exist and ``create`` is False)."""
        path = self.path.with_name(BROKER_SECRET_FILE)
        if not create and not path.exists():
            return None
        return account_secret(path, self.path)

    def keep_broker_secret(self, secret: bytes) -> None:
        """Take a copied catalog's secret (`catalog copy`), so its stations keep their
        passwords."""
        path = self.path.with_name(BROKER_SECRET_FILE)
        if not publish_secret_once(path, secret) and path.read_bytes() != secret:
            raise StorageError(f"{path} holds another broker-account secret already; move "
                               "it away to take the copied catalog's")


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
