"""The PostgreSQL catalog backend's registration: ``postgresql://`` and ``postgres://``
URLs open server/catalog/postgres.py, imported only then, so that a collector on SQLite
needs no psycopg."""

from __future__ import annotations

from obslink.errors import StorageError
from obslink.plugins import hookimpl


class PostgresBackend:
    schemes = ("postgresql", "postgres")

    @classmethod
    def open(cls, url: str):
        try:
            from obslink.server.catalog.postgres import PostgresCatalog
        except ImportError as exc:
            if not (exc.name or "").startswith("psycopg"):
                raise
            raise StorageError(f"a PostgreSQL catalog needs psycopg 3 ({exc}); install it "
                               "with `pip install 'obslink[postgresql]'` (scripts/bootstrap.sh "
                               "does)") from None
        return PostgresCatalog(url)


@hookimpl
def obslink_register_catalog_backends(registry) -> None:
    registry.add_catalog_backend(PostgresBackend)
