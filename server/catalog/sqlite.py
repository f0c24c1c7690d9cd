"""The SQLite catalog backend: one file (WAL, synchronous FULL), its tables made by
sqlite_schema's migrations. Each concern is a module of its own, mixed in here: the ingest
path, keys, the operators' records, datasets, reports, the transparency log, batch
records, data users' queries, monitoring, products."""

from __future__ import annotations

from pathlib import Path

from obslink.plugins import hookimpl
from obslink.sqlite_store import apply_migrations, open_database
from obslink.server.catalog.interface import Catalog
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
from obslink.server.catalog.sqlite_schema import MIGRATIONS


class SQLiteCatalog(SQLiteIngest, SQLiteKeys, SQLiteAdmin, SQLiteDatasets, SQLiteReports,
                    SQLiteLog, SQLiteRecords, SQLiteQueries, SQLiteMonitor, SQLiteProducts,
                    SQLiteAccess, Catalog):
    #: a path, or a ``sqlite:///path`` URL (``open_catalog`` strips the scheme)
    schemes = ("sqlite", "")

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self.db = open_database(self.path, "FULL", "catalog")
        self.conn = self.db.conn
        apply_migrations(self.conn, MIGRATIONS)
        self._init_ingest()
        self._init_keys()
        self._init_log()

    @classmethod
    def open(cls, url: str) -> "SQLiteCatalog":
        return cls(url.removeprefix("sqlite://"))

    def reader(self) -> "SQLiteCatalog":
        return SQLiteCatalog(self.path)

    def close(self) -> None:
        self.conn.close()


@hookimpl
def obslink_register_catalog_backends(registry) -> None:
    registry.add_catalog_backend(SQLiteCatalog)
