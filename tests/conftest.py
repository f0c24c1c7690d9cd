"""Fixtures: a real Mosquitto per test session, real obslink processes, simulated stations."""

from __future__ import annotations

import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
import requests
from paho.mqtt.enums import CallbackAPIVersion

from obslink.demo.broker import Mosquitto
from obslink.demo.postgres import PostgresServer, collector_file_options
from obslink.keys import key_id, load_public_key, public_bytes, write_keypair
from obslink.server.catalog import Station, open_catalog
from obslink.demo.simulator import KINDS, SimulatedLogger, demo_start_time, write_agent_config

NETWORK = "test"
# fixtures other test modules share
pytest_plugins = ["tests.signed_catalog"]


def wait_until(condition, timeout: float = 30.0, interval: float = 0.05, message: str = ""):
    """Poll ``condition`` until it returns something truthy; fail with ``message`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {message or condition}")
        time.sleep(interval)


@contextmanager
def listening(port: int, topic: str):
    """A subscriber on ``topic`` (subscribed before the body runs); yields the list its
    messages arrive in."""
    received: list[mqtt.MQTTMessage] = []
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_message = lambda c, userdata, message: received.append(message)
    client.on_subscribe = lambda *args: subscribed.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.subscribe(topic, qos=1)
        assert subscribed.wait(5), f"no subscription to {topic}"
        yield received
    finally:
        client.loop_stop()
        client.disconnect()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory):
    """A real PostgreSQL (initdb, pg_ctl) on a free loopback port for the whole session;
    fsync off: it holds test data only."""
    with PostgresServer(tmp_path_factory.mktemp("postgres"), durable=False) as server:
        yield server


# Catalog tests take ``catalog_location`` and run once on each backend
BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(params=BACKENDS)
def catalog_location(request, tmp_path) -> Path | str:
    """A new, empty catalog's location: a SQLite file, or a schema of its own in the
    session's PostgreSQL (its URL sets the search path)."""
    if request.param == "sqlite":
        return tmp_path / "catalog.db"
    return request.getfixturevalue("postgres").schema_url(f"test_{secrets.token_hex(6)}")


class _TokenOfServer(requests.auth.AuthBase):
    """Each test API server's administrator token, by the server's host:port."""

    def __call__(self, request):
        token = API_TOKENS.get(urlsplit(request.url).netloc)
        if token and "Authorization" not in request.headers:
            request.headers["Authorization"] = f"Bearer {token}"
        return request


API_TOKENS: dict[str, str] = {}
# what tests call the HTTP API with: as an administrator cleared for everything (the
# access tests, tests/test_access_api.py, call it as every role)
admin_http = requests.Session()
admin_http.auth = _TokenOfServer()


def make_account(location, name: str, role: str, clearance: str = "not-released",
                 scopes: tuple[str, ...] = ()) -> str:
    """A service account in the catalog at ``location`` and a new token of it."""
    from obslink.server.access.tokens import issue_token

    catalog = open_catalog(location)
    try:
        catalog.create_account(name, role, clearance, "service")
        return issue_token(catalog, name, scopes, None)[1]
    finally:
        catalog.close()


def admit_tests(location, url: str) -> str:
    """An administrator account for the tests calling the API at ``url`` through ``api``."""
    token = API_TOKENS[urlsplit(url).netloc] = make_account(location, "tester",
                                                            "administrator")
    return token


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """A real Mosquitto on a free loopback port for the whole test session."""
    with Mosquitto(tmp_path_factory.mktemp("broker")) as mosquitto:
        yield mosquitto


class ObslinkProcess:
    """``python -m obslink …`` as a real process, its output in a log file."""

    def __init__(self, args: list[str], log_path: Path, env: dict | None = None) -> None:
        self.args = args
        self.log_path = log_path
        self.env = env  # extra environment (e.g. OBSLINK_FAULTS)
        self.process: subprocess.Popen | None = None

    def start(self) -> "ObslinkProcess":
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen([sys.executable, "-m", "obslink", *self.args],
                                        stdout=log, stderr=subprocess.STDOUT,
                                        env={**os.environ, **(self.env or {})})
        log.close()
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no chance to flush or say goodbye, like a power cut."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> int | None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode if self.process else None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class CatalogView:
    """Read-only queries on the catalog a collector process writes (or on another SQLite
    file a process writes: an agent's outbox); a PostgreSQL catalog by its URL."""

    path: Path | str

    def query(self, sql: str, *params):
        if isinstance(self.path, str):  # a catalog URL: a connection of the test's own
            from obslink.server.catalog.postgres_connection import PgConnection

            if not hasattr(self, "_postgres"):
                self._postgres = PgConnection(self.path)
            return self._postgres.execute(sql, params).fetchall()
        with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10) as conn:
            return conn.execute(sql, params).fetchall()

    def count(self, table: str) -> int:
        try:
            return self.query(f"SELECT count(*) FROM {table}")[0][0]
        except sqlite3.OperationalError:
            return 0


@dataclass
class TestStation:
    id: str
    directory: Path
    logger: SimulatedLogger
    config: Path
    private_key: Path
    public_key: Path

    def unacked_batches(self) -> int:
        """Batches in the agent's outbox still waiting for an ack (refused ones aside)."""
        outbox = CatalogView(self.directory / "outbox.db")
        if not outbox.path.exists():
            return 0
        return outbox.query("SELECT count(*) FROM batches WHERE refused_reason IS NULL")[0][0]


class Deployment:
    """A collector with its catalog, and stations whose agents talk to it via the broker."""

    def __init__(self, base: Path, broker: Mosquitto, catalog: Path | str | None = None
                 ) -> None:
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        self.broker = broker
        # a SQLite file, or a PostgreSQL catalog's URL
        self.catalog_path = catalog or base / "catalog.db"
        self.catalog = CatalogView(self.catalog_path)
        self.processes: list[ObslinkProcess] = []
        self.collector: ObslinkProcess | None = None
        # no shared state between tests: a group name reused (id() values are) would hand
        # this collector an earlier one's queued session on the shared broker
        self.group = f"g{os.getpid()}-{secrets.token_hex(4)}"

    def add_station(self, station_id: str, kind_index: int = 0, register: bool = True,
                    start=None) -> TestStation:
        directory = self.base / station_id
        private, public = directory / "station.key", directory / "station.pub"
        write_keypair(private, public)
        logger = SimulatedLogger(station_id, KINDS[kind_index % len(KINDS)],
                                 directory / "logger", start or demo_start_time(),
                                 seed=kind_index)
        config = write_agent_config(directory / "agent.toml", logger, NETWORK, self.broker.url,
                                    private, directory / "outbox.db", poll_interval=0.1)
        if register:
            self.register(station_id, public)
        return TestStation(station_id, directory, logger, config, private, public)

    def add_station_with_sources(self, station_id: str, utc_offset: str,
                                 sources_toml: str) -> Path:
        """Keys, registration and an agent config whose sources are ``sources_toml``."""
        directory = self.base / station_id
        write_keypair(directory / "station.key", directory / "station.pub")
        self.register(station_id, directory / "station.pub")
        config = directory / "agent.toml"
        config.write_text(f"""\
[station]
id = "{station_id}"
network = "{NETWORK}"
private_key = "station.key"
utc_offset = "{utc_offset}"
[uplink]
broker = "{self.broker.url}"
ack_timeout = 5
""" + sources_toml)
        return config

    def register(self, station_id: str, public_key: Path) -> None:
        catalog = open_catalog(self.catalog_path)
        key = load_public_key(public_key)
        catalog.add_station(Station(station_id, NETWORK, interval_seconds=60),
                            public_bytes(key), key_id(key))
        catalog.close()

    def start_collector(self, env: dict | None = None, wait: bool = True,
                        options: tuple[str, ...] = ()) -> ObslinkProcess:
        """Start the collector and wait until its subscription stands (a message published
        before that has no subscriber and the broker drops it)."""
        self.collector = self.start_worker(0, env, wait, options, self.collector)
        return self.collector

    def catalog_options(self) -> tuple[str, ...]:
        """``--db`` for the collector's commands, with the files that lie beside a SQLite
        catalog named where the catalog is a URL (nothing lies "beside" it)."""
        return ("--db", str(self.catalog_path),
                *collector_file_options(self.catalog_path, self.base))

    def start_worker(self, number: int, env: dict | None = None, wait: bool = True,
                     options: tuple[str, ...] = (),
                     previous: ObslinkProcess | None = None) -> ObslinkProcess:
        """Collector worker ``number`` of the deployment's group (0 is ``start_collector``'s),
        on the same catalog; ``previous``: the process this one replaces (its log goes on)."""
        # ready: its link subscribed to the stations' data, its product process to their
        # products (a message published before a subscription stands has no subscriber)
        markers = ("collector ready: subscribed", "collector ready for products")
        before = [previous.log().count(marker) if previous else 0 for marker in markers]
        suffix = f"-{number}" if number else ""
        worker = self._spawn(["collector", "serve", *self.catalog_options(),
                              "--broker", self.broker.url, "--group", self.group,
                              "--client-id", f"collector-{self.group}{suffix}", *options],
                             f"collector{suffix}", env)
        if wait:
            wait_until(lambda: all(worker.log().count(marker) > count
                                   for marker, count in zip(markers, before))
                       or not worker.alive(), timeout=15,
                       message="the collector to subscribe")
        return worker

    def start_agent(self, station: TestStation) -> ObslinkProcess:
        return self.run_agent(station.config)

    def run_agent(self, config: Path) -> ObslinkProcess:
        return self._spawn(["agent", "run", str(config)], f"agent-{config.parent.name}")

    def _spawn(self, args: list[str], name: str, env: dict | None = None) -> ObslinkProcess:
        process = ObslinkProcess(args, self.base / f"{name}.log", env).start()
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()


@pytest.fixture
def deployment(tmp_path, broker):
    deployed = Deployment(tmp_path, broker)
    # The catalog exists (schema migrated) before any process opens it.
    open_catalog(deployed.catalog_path).close()
    yield deployed
    deployed.stop_all()


@pytest.fixture
def deployment_on_each_backend(tmp_path, broker, catalog_location):
    """``deployment``, run once with a SQLite catalog and once with a PostgreSQL one."""
    deployed = Deployment(tmp_path, broker, catalog_location)
    open_catalog(catalog_location).close()
    yield deployed
    deployed.stop_all()
