"""`obslink catalog copy SOURCE TARGET`: a whole catalog moved into an empty one (SQLite to
PostgreSQL above all), table by table in the order their references need, in one
transaction on the target, then checked: every table's row count and the transparency
log's tree head equal on both sides (docs/scaling.md, "Moving a catalog")."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from obslink.errors import StorageError
from obslink.sqlite_store import transaction
from obslink.server.catalog.backends import shown_url
from obslink.server.catalog.interface import Catalog

# referenced tables before the tables that reference them
TABLES = ("stations", "station_keys", "bundles", "batches", "series", "observation_values",
          "refusals", "qc_checks", "qc_state", "gaps", "broker_accounts", "enrolment_tokens",
          "replay_floors", "enrolment_attempts", "broker_configs", "tree_heads",
          "catalog_settings", "datasets", "monitor_hours", "monitor_stations", "schedules",
          "alarm_rules", "alarms", "webhooks", "alarm_deliveries", "products", "product_gaps",
          "log_leaves", "batch_contexts", "accounts", "access_tokens", "access_blacklist",
          "audit_log")
# not copied: browser sessions and failed attempts (they only matter for minutes; a moved
# catalog's users log in again), the migrations (the target's own), and secrets of the
# broker copied apart (_copy_broker_secret)
NOT_COPIED = ("access_sessions", "access_failures", "migrations", "catalog_secrets")
# made with every new catalog (its defaults): replaced by the source's
SETTINGS_TABLES = ("catalog_settings",)
ROWS_PER_READ = 5000
PROGRESS_EVERY_S = 2.0


@dataclass
class CopyReport:
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows copied
    tree_size: int = 0
    root: bytes = b""
    seconds: float = 0.0


def copy_catalog(source: Catalog, target: Catalog,
                 say: Callable[[str], None] = lambda text: None) -> CopyReport:
    """Copy ``source`` into the empty ``target`` and check the copy; StorageError says what
    differs (the target is then left as the failed transaction left it: empty)."""
    if target.conn.execute("SELECT count(*) FROM stations").fetchone()[0]:
        raise StorageError(f"the target catalog {shown_url(target.location)} holds stations "
                           "already; copy into a new, empty catalog")
    report, started = CopyReport(), time.monotonic()
    with transaction(target.conn):
        for table in SETTINGS_TABLES:
            target.conn.execute(f"DELETE FROM {table}")
        for table in TABLES:
            report.rows[table] = _copy_table(source, target, table, say)
        _copy_broker_secret(source, target)
        report.rows["retired_months"] = _copy_retired_months(source, target)
        finish = getattr(target, "after_copy", None)
        if finish is not None:
            finish()
    for table in TABLES:
        counts = [catalog.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                  for catalog in (source, target)]
        if counts[0] != counts[1]:
            raise StorageError(f"after the copy, {table} holds {counts[1]:,} rows in the "
                               f"target and {counts[0]:,} in the source")
    heads = [catalog.tree_root() for catalog in (source, target)]
    if heads[0] != heads[1]:
        raise StorageError(f"after the copy, the target's log has {heads[1][0]} leaves with "
                           f"root {heads[1][1].hex()}; the source's {heads[0][0]} with root "
                           f"{heads[0][1].hex()}")
    audit_heads = [catalog.conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC "
                                        "LIMIT 1").fetchone() for catalog in (source, target)]
    if audit_heads[0] != audit_heads[1]:
        raise StorageError(f"after the copy, the target's audit log ends in "
                           f"{audit_heads[1]}; the source's in {audit_heads[0]}")
    report.tree_size, report.root = heads[0]
    report.seconds = time.monotonic() - started
    return report


def _columns(catalog: Catalog, table: str) -> list[str]:
    cursor = catalog.conn.execute(f"SELECT * FROM {table} LIMIT 0")
    cursor.fetchall()
    return [column[0] for column in cursor.description]


def _copy_retired_months(source: Catalog, target: Catalog) -> int:
    """The record of months retired into archive files goes along: without it the copy's
    `catalog verify` would find their readings missing, and row numbers could repeat."""
    retired = source.retired_months()
    if retired and not hasattr(target, "keep_retired_month"):
        raise StorageError(f"{shown_url(source.location)} has retired months of observations "
                           f"into archive files; {shown_url(target.location)} cannot record "
                           "them (a SQLite catalog): copy into PostgreSQL")
    for month in retired:
        target.keep_retired_month(month)
    return len(retired)


def _copy_table(source: Catalog, target: Catalog, table: str, say) -> int:
    wanted = _columns(target, table)
    columns = [name for name in _columns(source, table) if name in wanted]
    total = source.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    names = ", ".join(columns)
    insert = f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})"
    order = ", ".join(columns[:1])  # each table's first column is its key, or leads it
    cover = getattr(target, "cover_observation_times", None)
    time_at = columns.index("observed_us") if table == "observation_values" else None
    copied, said = 0, time.monotonic()
    rows = source.conn.execute(f"SELECT {names} FROM {table} ORDER BY {order}")
    while True:
        chunk = [tuple(row) for _, row in zip(range(ROWS_PER_READ), rows)]
        if not chunk:
            break
        if time_at is not None and cover is not None:
            cover(row[time_at] for row in chunk)
        try:
            target.conn.executemany(insert, chunk)
        except Exception as exc:
            raise StorageError(f"{table}: the target refused rows {copied + 1:,}-"
                               f"{copied + len(chunk):,} of {total:,} ({type(exc).__name__}: "
                               f"{exc})") from exc
        copied += len(chunk)
        if time.monotonic() - said >= PROGRESS_EVERY_S:
            said = time.monotonic()
            say(f"  {table}: {copied:,} of {total:,} rows")
    say(f"  {table}: {copied:,} rows")
    return copied


def _copy_broker_secret(source: Catalog, target: Catalog) -> None:
    """The secret the stations' broker passwords derive from goes along, so that every
    station keeps its password."""
    secret = getattr(source, "broker_secret", None)
    keep = getattr(target, "keep_broker_secret", None)
    if secret is not None and keep is not None:
        found = secret(create=False)
        if found is not None:
            keep(found)
