"""Retiring old months of a PostgreSQL catalog's observations (docs/scaling.md,
"Retention"): a month's partition is written to an archive file (gzip'd CSV, the
partition's rows in row order, with a header), the file made durable and hashed, the month
recorded in ``retired_months`` (rows, highest row number, file, SHA-256), and the
partition detached and dropped, in one transaction a month, in the writers' turn. A month
that late data makes again is retired again into a file of its own.

What stays: every batch (its signed body holds every reading), its log leaf, its
provenance; `catalog verify` checks batches whose rows were retired against their
signatures and leaves, and counts their readings as retired. Row numbers are never given
out again: a commit numbers rows above the highest retired one as well."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path
from typing import Callable

from obslink.errors import ConfigError
from obslink.readings import format_utc, now_us
from obslink.server.catalog.postgres_partitions import month_bounds, partition_name
from obslink.server.product_store import sync_directory
from obslink.sqlite_store import transaction


def parse_month(text: str) -> tuple[int, int]:
    """``YYYY-MM`` -> (year, month)."""
    year, dash, month = text.partition("-")
    if not (dash and year.isdigit() and month.isdigit() and len(year) == 4
            and 1 <= int(month) <= 12):
        raise ConfigError(f"--before {text!r}: give a month as YYYY-MM, e.g. 2025-01")
    return int(year), int(month)


def retire_before(catalog, before: tuple[int, int], archive: Path,
                  say: Callable[[str], None]) -> list[dict]:
    """Retire every month with a partition that ends before ``before`` into ``archive``;
    the months retired, as ``retired_months`` rows."""
    archive.mkdir(parents=True, exist_ok=True)
    catalog.partitions.load()
    months = sorted(month for month in catalog.partitions.known if month < before)
    if not months:
        say(f"no month of observations before {before[0]:04d}-{before[1]:02d} is in the "
            "catalog; nothing retired")
    retired = []
    for number, (year, month) in enumerate(months, 1):
        retired.append(_retire_month(catalog, year, month, archive))
        say(f"  {number}/{len(months)} {retired[-1]['month']}: {retired[-1]['rows']:,} "
            f"observations into {retired[-1]['archive']}")
    return retired


def _retire_month(catalog, year: int, month: int, archive: Path) -> dict:
    conn, table = catalog.conn, partition_name(year, month)
    start_us, end_us = month_bounds(year, month)
    target = archive / f"{table}.csv.gz"
    again = 1
    while target.exists():  # the month retired before (late data made it again): kept
        again += 1
        target = archive / f"{table}-{again}.csv.gz"
    partial = target.with_name(target.name + ".partial")
    with transaction(conn):  # the writers' turn: no commit adds rows to it meanwhile
        rows, last_row = conn.execute(f"SELECT count(*), max(id) FROM {table}").fetchone()
        digest = hashlib.sha256()
        with open(partial, "wb") as raw_file:
            with gzip.GzipFile(fileobj=_Hashing(raw_file, digest), mode="wb",
                               mtime=0) as out, conn.raw.cursor() as cursor, cursor.copy(
                    f"COPY (SELECT * FROM {table} ORDER BY id) TO STDOUT "
                    "(FORMAT csv, HEADER)") as copy:
                for data in copy:
                    out.write(data)
            raw_file.flush()
            os.fsync(raw_file.fileno())
        os.replace(partial, target)
        sync_directory(archive)
        record = {"month": f"{year:04d}-{month:02d}", "start_us": start_us, "end_us": end_us,
                  "rows": rows, "last_row": last_row, "archive": str(target.resolve()),
                  "sha256": digest.hexdigest(), "retired_at": format_utc(now_us(), fixed=True)}
        keep_retired_month(conn, record)
        conn.execute(f"ALTER TABLE observation_values DETACH PARTITION {table}")
        conn.execute(f"DROP TABLE {table}")
    catalog.partitions.known.discard((year, month))
    return record


def keep_retired_month(conn, month: dict) -> None:
    conn.execute("INSERT INTO retired_months (month, start_us, end_us, rows, last_row, "
                 "archive, sha256, retired_at) VALUES (:month, :start_us, :end_us, :rows, "
                 ":last_row, :archive, :sha256, :retired_at)", month)


class _Hashing:
    """A file that hashes what is written to it."""

    def __init__(self, file, digest) -> None:
        self.file, self.digest = file, digest

    def write(self, data) -> int:
        self.digest.update(data)
        return self.file.write(data)

    def flush(self) -> None:
        self.file.flush()
