"""The PostgreSQL catalog backend (docs/scaling.md, "PostgreSQL"): ``--db
postgresql://user@host:port/database``. It runs the SQLite backend's modules, whose SQL is
portable, over a psycopg connection that takes their ``?`` parameters and makes writers
take turns (postgres_connection.py); what differs is here: the tables (postgres_schema.py,
observations partitioned by month, postgres_partitions.py), how keys changes are noticed,
which errors are the database's state, the observation text (postgres_text.py: the
SQLite statement that writes it is SQLite's own) and reading several series a statement
(postgres_series.py: a statement is a round trip here).

Several collector workers, on one machine or several, may share one PostgreSQL catalog: a
batch is stored once (UNIQUE (station, epoch, seq), checked in the writers' turn), and the
replay window is judged in the commit's transaction from the floors stored then."""

from __future__ import annotations

import secrets

import psycopg

from obslink.errors import StorageError
from obslink.sqlite_store import dicts, sql_statements, transaction
from obslink.server.catalog.backends import shown_url
from obslink.server.catalog.interface import Catalog
from obslink.server.catalog.postgres_connection import AUDIT_LOCK, PgConnection, copy_rows
from obslink.server.catalog.postgres_partitions import Partitions, months_ahead
from obslink.server.catalog.postgres_retention import keep_retired_month, retire_before
from obslink.server.catalog.postgres_text import PostgresText
from obslink.server.catalog.postgres_schema import MIGRATIONS
from obslink.server.catalog.sqlite_access import SQLiteAccess
from obslink.server.catalog.sqlite_admin import SQLiteAdmin
from obslink.server.catalog.sqlite_datasets import SQLiteDatasets
from obslink.server.catalog.sqlite_ingest import SQLiteIngest
from obslink.server.catalog.sqlite_keys import SQLiteKeys
from obslink.server.catalog.sqlite_log import SQLiteLog
from obslink.server.catalog.sqlite_monitor import SQLiteMonitor
from obslink.server.catalog.sqlite_products import SQLiteProducts
from obslink.server.catalog.sqlite_queries import SQLiteQueries
from obslink.server.catalog.sqlite_records import SQLiteRecords
from obslink.server.catalog.sqlite_reports import SQLiteReports
from obslink.readings import format_utc, now_us


class PostgresCatalog(PostgresText, SQLiteIngest, SQLiteKeys, SQLiteAdmin, SQLiteDatasets,
                      SQLiteReports, SQLiteLog, SQLiteRecords, SQLiteQueries, SQLiteMonitor,
                      SQLiteProducts, SQLiteAccess, Catalog):
    schemes = ("postgresql", "postgres")
    integrity_errors = (psycopg.IntegrityError,)
    # a group's fixed cost is higher here (a round trip a statement): four times SQLite's
    # backlog a group (bench/catalog_backends.py; docs/scaling.md)
    group_bytes = 256 * 1024
    # an audit row's commit does not wait for the WAL's flush: the WAL writer flushes it
    # within 3 × wal_writer_delay (0.6 s by default), as sync_audit promises
    _audit_begin = (f"BEGIN; SET LOCAL synchronous_commit = off; "
                    f"SELECT pg_advisory_xact_lock({AUDIT_LOCK})")
    _audit_durability = (None, None)

    def sync_audit(self) -> None:
        """Nothing to do: the server's WAL writer flushes asynchronous commits itself."""

    def __init__(self, url: str) -> None:
        self.location = url
        try:
            self.conn = PgConnection(url)
        except psycopg.OperationalError as exc:
            raise StorageError(f"cannot reach the PostgreSQL catalog {shown_url(url)}: "
                               f"{' '.join(str(exc).split())}; check that the server runs and the "
                               "URL's host, port, user and database are right") from None
        self._apply_migrations()
        self.partitions = Partitions(self.conn)
        self.partitions.load()
        ahead = set(months_ahead(now_us())) - self.partitions.known
        if ahead:  # this month's and the next ones', in a turn of their own
            with transaction(self.conn):
                self.partitions.cover(ahead)
        self._init_ingest()
        self._init_keys()
        self._init_log()

    @classmethod
    def open(cls, url: str) -> "PostgresCatalog":
        return cls(url)

    def reader(self) -> "PostgresCatalog":
        return PostgresCatalog(self.location)

    def close(self) -> None:
        self.conn.close()

    def _apply_migrations(self) -> None:
        """The migrations not yet recorded, in one transaction in the writers' turn (two
        workers starting together must not both make the tables), taken only when one is
        missing: opening a catalog (a reader, each of the API's connections) does not wait
        for the workers' commits."""
        conn = self.conn
        if self._applied() >= set(range(1, len(MIGRATIONS) + 1)):
            return
        with transaction(conn):
            conn.execute("CREATE TABLE IF NOT EXISTS migrations (id bigint PRIMARY KEY, "
                         "name text NOT NULL, applied_at text NOT NULL)")
            applied = self._applied()  # again, in the turn: another may have just applied
            for number, (name, sql) in enumerate(MIGRATIONS, start=1):
                if number in applied:
                    continue
                for statement in sql_statements(sql):
                    conn.execute(statement)
                conn.execute("INSERT INTO migrations VALUES (?, ?, ?)",
                             (number, name, format_utc(now_us(), fixed=True)))

    def _applied(self) -> set[int]:
        if self.conn.execute("SELECT to_regclass('migrations')").fetchone()[0] is None:
            return set()
        return {row[0] for row in self.conn.execute("SELECT id FROM migrations")}

    # -- what differs from SQLite --------------------------------------------------------------

    def is_transient(self, error: Exception) -> bool:
        """The database's state (connection lost, disk full, a lock or serialization
        conflict, the server shutting down), not the message's: a redelivery may succeed."""
        if isinstance(error, (psycopg.OperationalError, OSError, MemoryError)):
            return True
        state = getattr(error, "sqlstate", None) or ""
        # 40: transaction rollback (serialization, deadlock); 53: insufficient resources;
        # 57: operator intervention (shutdown); 58: system error (I/O)
        return state[:2] in ("40", "53", "57", "58")

    # Observation rows are numbered by the sequence from the highest stored (or retired)
    # + 1, in insert order (postgres_schema.py): a rolled-back commit's numbers are given
    # out again, a retired one's never. Set in the statement that takes a group's ids.
    _next_row = ("setval('observation_row', greatest((SELECT max(id) FROM "
                 "observation_values), (SELECT max(last_row) FROM retired_months), 0) + 1, "
                 "false)")

    def _insert_batches(self, accepted, check):
        # every month the group's observations fall in has its partition first (a batch's
        # readings share a few times: their months are found once each)
        self.partitions.cover_times({us for item in accepted for us in set(item.batch.times)})
        return super()._insert_batches(accepted, check)

    def _insert_rows(self, into: str, row: str, values: list) -> None:
        """COPY, not the INSERTs SQLite takes: each 32-row INSERT was a statement psycopg
        converted again (too long for its cache) and a round trip in the pipeline
        (bench/catalog_backends.py). ``row``'s NULLs are columns left to their default."""
        table, _, names = into.partition(" ")
        columns = [name.strip() for name, slot in zip(names.strip("()").split(","),
                                                      row.strip("()").split(","))
                   if slot == "?"]
        copy_rows(self.conn, table, columns, values)

    # One statement a group where SQLite asks once per station outbox: a statement here is
    # a round trip to the server (bench/catalog_backends.py).

    def commit_times(self, accepted) -> dict[tuple[str, str, int], str]:
        if not accepted:
            return {}
        columns = _arrays({(item.batch.station, item.batch.epoch, item.batch.seq)
                           for item in accepted})
        return {(station, epoch, seq): at for station, epoch, seq, at in self.conn.raw.execute(
            "SELECT station, epoch, seq, committed_at FROM batches JOIN unnest(%s::text[], "
            "%s::text[], %s::bigint[]) AS wanted (station, epoch, seq) USING (station, epoch, "
            "seq)", columns)}

    def replay_floors(self, outboxes) -> dict[tuple[str, str], int]:
        if not outboxes:
            return {}
        return {(station, epoch): floor for station, epoch, floor in self.conn.raw.execute(
            "SELECT station, epoch, floor FROM replay_floors JOIN unnest(%s::text[], "
            "%s::text[]) AS wanted (station, epoch) USING (station, epoch)",
            _arrays(outboxes))}

    def evicted(self, outboxes) -> dict[tuple[str, str], list[tuple[int, int, int, str]]]:
        found: dict[tuple[str, str], list] = {outbox: [] for outbox in outboxes}
        if outboxes:
            for station, epoch, *run in self.conn.raw.execute(
                    "SELECT station, epoch, first_seq, last_seq, gap_id, reason FROM gaps JOIN "
                    "unnest(%s::text[], %s::text[]) AS wanted (station, epoch) USING "
                    "(station, epoch)", _arrays(outboxes)):
                found[(station, epoch)].append(tuple(run))
        return found

    def _roll_back(self) -> None:
        super()._roll_back()
        # partitions made in the transaction are gone with it: made again (IF NOT EXISTS)
        # when next needed, without asking a server that may just have gone away
        self.partitions.known.clear()

    def keys_version(self) -> tuple:
        # no PRAGMA data_version: the count is asked for every group (an index-only scan)
        return self.conn.execute(
            "SELECT count(*), count(revoked_at), max(revoked_at), count(retire_at) "
            "FROM station_keys").fetchone()

    def broker_secret(self, create: bool = True) -> bytes | None:
        """The secret stations' broker passwords derive from lives in the catalog, so that
        workers on several machines derive the same passwords (SQLite keeps it in a file
        beside the catalog)."""
        if create:
            self.conn.execute("INSERT INTO catalog_secrets (name, value) VALUES "
                              "('broker-accounts', ?) ON CONFLICT (name) DO NOTHING",
                              (secrets.token_bytes(32),))
        row = self.conn.execute("SELECT value FROM catalog_secrets WHERE name = "
                                "'broker-accounts'").fetchone()
        return None if row is None else bytes(row[0])

    def keep_broker_secret(self, secret: bytes) -> None:
        self.conn.execute("INSERT INTO catalog_secrets (name, value) VALUES "
                          "('broker-accounts', ?) ON CONFLICT (name) DO UPDATE SET value = "
                          "excluded.value", (secret,))

    # -- retention (postgres_retention.py) -------------------------------------------------------

    def retire_before(self, before: tuple[int, int], archive, say) -> list[dict]:
        return retire_before(self, before, archive, say)

    def retired_months(self) -> list[dict]:
        return dicts(self.conn.execute(
            "SELECT month, start_us, end_us, rows, last_row, archive, sha256, retired_at "
            "FROM retired_months ORDER BY month, retired_at"))

    def keep_retired_month(self, month: dict) -> None:
        """Record a retired month (``retired_months``' columns), as `catalog copy` does."""
        keep_retired_month(self.conn, month)

    # -- `catalog copy` into this catalog --------------------------------------------------------

    def cover_observation_times(self, times) -> None:
        """Partitions for copied observations (inside the copy's transaction)."""
        self.partitions.cover_times(times)

    def after_copy(self) -> None:
        """Rows came with their ids: each identity column goes on after the highest."""
        for table, in self.conn.execute(
                "SELECT c.relname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                "WHERE a.attidentity != '' AND a.attname = 'id' AND "
                "pg_table_is_visible(c.oid)").fetchall():
            self.conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                              f"coalesce(max(id), 0) + 1, false) FROM {table}")


def _arrays(rows) -> list[list]:
    """Rows as one list a column: the arrays a statement unnests."""
    return [list(column) for column in zip(*rows)]
