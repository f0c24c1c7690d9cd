"""A psycopg 3 connection that speaks the part of sqlite3's connection the catalog's mixins
use, so that their SQL (written to be portable: RETURNING, ON CONFLICT, standard
functions) runs on PostgreSQL unchanged (docs/scaling.md, "PostgreSQL").

- ``?`` parameters become psycopg's ``%s``, ``:name`` ones ``%(name)s`` (and a literal
  ``%`` becomes ``%%``), once per statement text;
- ``BEGIN IMMEDIATE`` (SQLite: take the write lock now) becomes BEGIN and a transaction-
  level advisory lock that every catalog writer takes: writers take turns as on SQLite, so
  ids taken as max + 1 and the transparency log's leaf order hold with several collector
  workers, and what a transaction reads (replay floors) no other writer changes before it
  ends;
- autocommit outside explicit transactions, as the SQLite catalog runs;
- numeric results (sum() of integers) come back as int, not Decimal.
"""

from __future__ import annotations

import functools
import re
from decimal import Decimal

import psycopg
from psycopg.adapt import Loader
from psycopg.pq import TransactionStatus

# pg_advisory_xact_lock's key for the catalog's writers ("obslink" in ASCII)
WRITER_LOCK = 0x6F62736C696E6B
# the audit log's appenders' (docs/access.md), apart from the writers' so that an API
# request does not wait for a collector's commit
AUDIT_LOCK = WRITER_LOCK + 1


class _NumericLoader(Loader):
    """numeric -> int where whole (sums and counts), float otherwise."""

    def load(self, data):
        value = Decimal(bytes(data).decode())
        return int(value) if value == value.to_integral_value() else float(value)


_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@functools.lru_cache(maxsize=4096)
def translate(sql: str, named: bool = False) -> str:
    """qmark (or, ``named``, :name) parameters to psycopg's format style."""
    sql = sql.replace("%", "%%")
    return _NAMED.sub(r"%(\1)s", sql) if named else sql.replace("?", "%s")


class PgCursor:
    """What the mixins ask of a cursor: fetchone, fetchall, iteration, description,
    rowcount."""

    def __init__(self, cursor: psycopg.Cursor) -> None:
        self._cursor = cursor

    @property
    def description(self):
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def fetchone(self):
        return self._cursor.fetchone() if self._cursor.description else None

    def fetchall(self):
        return self._cursor.fetchall() if self._cursor.description else []

    def __iter__(self):
        return iter(self._cursor) if self._cursor.description else iter(())


class PgConnection:
    def __init__(self, url: str) -> None:
        self.url = url
        self._types: dict[tuple, list[str]] = {}
        self._closed = False
        self.raw = self._connect()

    def _connect(self) -> psycopg.Connection:
        raw = psycopg.connect(self.url, autocommit=True)
        raw.adapters.register_loader("numeric", _NumericLoader)
        return raw

    def _usable(self) -> None:
        """A connection the server dropped (its restart, a failover) is made again: the
        statement that found it broken failed (transiently, for the collector, which tries
        the group again); the next runs on a new connection."""
        if self.raw.broken and not self._closed:
            self.raw = self._connect()

    def execute(self, sql: str, params=()) -> PgCursor:
        self._usable()
        if sql == "BEGIN IMMEDIATE":
            # one round trip: without parameters, several statements go as one query
            return PgCursor(self.raw.execute(
                f"BEGIN; SELECT pg_advisory_xact_lock({WRITER_LOCK})"))
        if not params:  # psycopg reads % as a placeholder only when given parameters
            return PgCursor(self.raw.execute(sql))
        return PgCursor(self.raw.execute(translate(sql, isinstance(params, dict)), params))

    def executemany(self, sql: str, rows) -> PgCursor:
        self._usable()
        rows = list(rows)
        cursor = self.raw.cursor()
        if rows:
            cursor.executemany(translate(sql), rows)
        return PgCursor(cursor)

    def column_types(self, table: str, columns: tuple[str, ...]) -> list[str]:
        """The types of a table's columns, as binary COPY needs them (asked once)."""
        key = (table, columns)
        if key not in self._types:
            found = dict(self.raw.execute(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE "
                "attrelid = %s::regclass AND attnum > 0", (table,)).fetchall())
            self._types[key] = [found[column] for column in columns]
        return self._types[key]

    @property
    def in_transaction(self) -> bool:
        # a broken connection's transaction is gone with it: nothing to roll back
        return not self.raw.broken and \
            self.raw.info.transaction_status != TransactionStatus.IDLE

    def close(self) -> None:
        self._closed = True
        self.raw.close()


def copy_rows(conn: PgConnection, table: str, columns: list[str], values: list) -> None:
    """Rows given as one flat list of values, row after row, by binary COPY (in the
    caller's transaction): columns not named take their defaults, in row order. Binary:
    text COPY escaped each bytea (a batch's body, signature, hashes) in Python."""
    if not values:
        return
    width = len(columns)
    types = conn.column_types(table, tuple(columns))  # before COPY holds the connection
    with conn.raw.cursor() as cursor, cursor.copy(
            f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(types)
        for start in range(0, len(values), width):
            copy.write_row(values[start:start + width])
