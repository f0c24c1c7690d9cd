"""SQLite plumbing shared by the agent's outbox and the collector's catalog."""

from __future__ import annotations

import functools
import logging
import re
import sqlite3
import sys
from contextlib import contextmanager
from pathlib import Path


def _import_sqlite_utils():
    """sqlite-utils, without the pandas and numpy it imports when they are installed (to
    convert their values, which obslink never hands it): on a machine that has them for
    something else they cost every obslink process about 60 MB of memory and 0.3 s of
    start-up. Hidden for this one import only; whoever imports them later gets them."""
    hidden = [name for name in ("pandas", "numpy") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # `import pandas` raises ImportError
    try:
        import sqlite_utils
    finally:
        for name in hidden:
            del sys.modules[name]
    return sqlite_utils


sqlite_utils = _import_sqlite_utils()

from obslink.errors import StorageError  # noqa: E402 (after the import above)
from obslink.readings import format_utc, now_us  # noqa: E402

log = logging.getLogger(__name__)

ROWS_PER_STATEMENT = 32  # rows one INSERT of insert_rows carries (32 x 24 values < 999)
STATEMENT_CACHE = 512  # prepared statements kept: insert_rows' remainders add up to 31 each


def open_database(path: Path, synchronous: str, what: str) -> sqlite_utils.Database:
    """Open (or create) a WAL database in autocommit mode; transactions are explicit.

    Its directory must exist: a mistyped path must not make directories anywhere."""
    if not path.parent.is_dir():
        raise StorageError(f"{what} {path}: its directory {path.parent} does not exist; "
                           f"create it (mkdir -p {path.parent}) or correct the path")
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False,
                               cached_statements=STATEMENT_CACHE)
        db = sqlite_utils.Database(conn)
        db.enable_wal()
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"{what} {path} cannot be opened: {exc}") from None
    return db


@contextmanager
def transaction(conn: sqlite3.Connection):
    """BEGIN IMMEDIATE … COMMIT, rolled back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:  # SQLite rolls back by itself on some errors (disk full)
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def insert_rows(conn: sqlite3.Connection, into: str, row: str, values: list) -> None:
    """Insert rows given as one flat list of values, row after row, up to
    ROWS_PER_STATEMENT rows per INSERT statement. ``row`` is one row's VALUES tuple, such as
    ``"(?,?,NULL)"``. ``executemany`` with one row per statement costs more per row than
    the insert itself: a statement step per row, and the interpreter lock given up and
    taken back around each, which lets the MQTT thread in at every row."""
    width = row.count("?")
    per_statement = ROWS_PER_STATEMENT * width
    whole = len(values) - len(values) % per_statement
    if whole:
        conn.executemany(_multi_row_insert(into, row, ROWS_PER_STATEMENT),
                         [values[i:i + per_statement] for i in range(0, whole, per_statement)])
    if whole < len(values):
        conn.execute(_multi_row_insert(into, row, (len(values) - whole) // width),
                     values[whole:])


@functools.lru_cache(maxsize=STATEMENT_CACHE)
def _multi_row_insert(into: str, row: str, rows: int) -> str:
    return f"INSERT INTO {into} VALUES {','.join([row] * rows)}"


def apply_migrations(conn: sqlite3.Connection, migrations: list[tuple[str, str]],
                     on_first=None) -> None:
    """Apply the migrations not yet recorded, each in its own transaction; safe to re-run."""
    conn.execute("CREATE TABLE IF NOT EXISTS migrations (id INTEGER PRIMARY KEY, "
                 "name TEXT NOT NULL, applied_at TEXT NOT NULL)")
    applied = {row[0] for row in conn.execute("SELECT id FROM migrations")}
    for number, (name, sql) in enumerate(migrations, start=1):
        if number in applied:
            continue
        if applied:  # an existing file: converting its rows may take a while
            log.warning("upgrading %s: migration %d, %s … (a large file takes a while; "
                        "stopping now is safe, the upgrade starts over)", database_name(conn),
                        number, name)
        with transaction(conn):
            for statement in sql_statements(sql):
                conn.execute(statement)
            conn.execute("INSERT INTO migrations VALUES (?, ?, ?)",
                         (number, name, format_utc(now_us(), fixed=True)))
            if number == 1 and on_first is not None:
                on_first(conn)


def sql_statements(sql: str) -> list[str]:
    """A migration's statements: split where a ';' ends a line, so that a trigger's body
    (``BEGIN …; END`` written on one line) stays whole."""
    return [part for part in re.split(r";[ \t]*(?:\n|$)", sql) if part.strip()]


def database_name(conn: sqlite3.Connection) -> str:
    """The file behind ``conn``, for messages."""
    row = conn.execute("PRAGMA database_list").fetchone()
    return row[2] or "an in-memory database"


def dicts(cursor: sqlite3.Cursor) -> list[dict]:
    """A query's rows as dicts keyed by column name."""
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row)) for row in cursor]
