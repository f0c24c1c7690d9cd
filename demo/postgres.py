"""Starting a private PostgreSQL on a free loopback port (the tests, benchmarks): initdb
into a directory of its own, then the server with pg_ctl, stopped (and its files left to
the caller's temporary directory) on stop()."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from obslink.demo.broker import free_port
from obslink.errors import ToolMissingError, TransportError

INSTALL_HINT = ("install it with `sudo apt-get install postgresql` (Debian/Ubuntu) or run "
                "scripts/bootstrap.sh, which does it for you")
# The server refuses to run as root; as root, ours runs as this account (Debian's package
# makes it).
UNPRIVILEGED_USER = "postgres"
DATABASE = "obslink"


def find_postgres_bin() -> Path:
    """The directory of initdb, pg_ctl and postgres: $OBSLINK_PG_BIN, else PATH, else
    Debian's /usr/lib/postgresql/<newest>/bin (not on PATH there)."""
    chosen = os.environ.get("OBSLINK_PG_BIN")
    if chosen:
        if not (Path(chosen) / "initdb").is_file():
            raise ToolMissingError(f"OBSLINK_PG_BIN={chosen} holds no initdb; unset it to use "
                                   f"the installed PostgreSQL, or {INSTALL_HINT}")
        return Path(chosen)
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                      key=lambda path: int(Path(path).parent.parent.name)
                      if Path(path).parent.parent.name.isdigit() else 0)
    if versions:
        return Path(versions[-1]).parent
    raise ToolMissingError(f"PostgreSQL (initdb, pg_ctl) is not installed; {INSTALL_HINT}")


class PostgresServer:
    """A PostgreSQL cluster in ``directory`` on 127.0.0.1:``port``, with a database
    ``obslink`` its superuser ``obslink`` reaches without a password (trust, loopback only).
    ``durable=False`` turns fsync off: for tests, never for a measurement."""

    def __init__(self, directory: Path, port: int | None = None, durable: bool = True):
        self.directory = Path(directory)
        self.port = port or free_port()
        self.durable = durable
        self.started = False
        self._own_directory = False

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def url(self) -> str:
        return f"postgresql://obslink@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        command = [str(find_postgres_bin() / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", UNPRIVILEGED_USER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise TransportError(f"PostgreSQL's {args[0]} failed (exit {done.returncode}): "
                                 f"{(done.stderr or done.stdout).strip()[-2000:]}")
        return done

    def start(self, timeout: float = 60.0) -> "PostgresServer":
        if os.geteuid() == 0 and not self._own_directory:
            # the unprivileged account cannot enter a root-owned private directory (a
            # test's tmp_path): the cluster lives in a directory of its own under /tmp,
            # removed by stop()
            self.directory = Path(tempfile.mkdtemp(prefix="obslink-postgres-"))
            shutil.chown(self.directory, UNPRIVILEGED_USER)
            self._own_directory = True
        self.directory.mkdir(parents=True, exist_ok=True)
        if not (self.data / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.data), "-U", "obslink", "-A", "trust",
                      "-E", "UTF8", "--locale", "C", "--no-sync")
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.directory} "
                   "-c max_connections=200")
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.directory / "server.log"),
                  "-o", options, "-w", "-t", str(int(timeout)), "start", timeout=timeout + 10)
        self.started = True
        self._create_database(timeout)
        return self

    def schema_url(self, schema: str) -> str:
        """A new, empty schema in the server's database, as a catalog URL whose search path
        is that schema: catalogs of their own (a test's, a bench's) in one server."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        return f"{self.url}?options=-csearch_path%3D{schema}"

    def _create_database(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(f"postgresql://obslink@127.0.0.1:{self.port}/postgres",
                                     autocommit=True, connect_timeout=5) as conn:
                    if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                        (DATABASE,)).fetchone():
                        conn.execute(f"CREATE DATABASE {DATABASE}")
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        if self.started:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
            self.started = False
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)
            self._own_directory = False

    def __enter__(self) -> "PostgresServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def collector_file_options(location, directory: Path) -> list[str]:
    """The collector's options for the files that lie beside a SQLite catalog (its keys,
    the product store), put in ``directory`` when the catalog is a URL, which has no
    "beside" (the tests, benchmarks)."""
    if "://" not in str(location):
        return []
    return ["--collector-key", str(directory / "collector.key"),
            "--decryption-key", str(directory / "collector-x25519.key"),
            "--product-store", str(directory / "products")]
