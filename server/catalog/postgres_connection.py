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
        self.raw = psycopg.connect(url, autocommit=True)
        self.raw.adapters.register_loader("numeric", _NumericLoader)

    def execute(self, sql: str, params=()) -> PgCursor:
        if sql == "BEGIN IMMEDIATE":
            cursor = self.raw.execute("BEGIN")
            self.raw.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK,))
            return PgCursor(cursor)
        if not params:  # psycopg reads % as a placeholder only when given parameters
            return PgCursor(self.raw.execute(sql))
        return PgCursor(self.raw.execute(translate(sql, isinstance(params, dict)), params))

    def executemany(self, sql: str, rows) -> PgCursor:
        rows = list(rows)
        cursor = self.raw.cursor()
        if rows:
            cursor.executemany(translate(sql), rows)
        return PgCursor(cursor)

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != TransactionStatus.IDLE

    def close(self) -> None:
        self.raw.close()
