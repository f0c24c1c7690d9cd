"""The plugin system: built-ins and third-party plugins go through the same door."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types

import pluggy
import pytest
from fastapi import APIRouter, Request  # the route's annotations are resolved at module level

from obslink.plugins import hookspecs
from obslink.plugins.registry import (DEFAULT_PLUGINS, PluginConflictError, hookimpl,
                                      load_registry, make_plugin_manager)
from obslink.plugins.toa5 import TOA5Adapter

THIRD_PARTY = textwrap.dedent('''
    from obslink.plugins.formats import Decoded, FormatAdapter
    from obslink.plugins import hookimpl
    from obslink.readings import Reading

    class PairsAdapter(FormatAdapter):
        """`seconds,value` lines: the simplest possible logger."""
        name = "pairs"
        version = "0.3"
        summary = "seconds-since-epoch,value lines"

        def decode(self, data, *, start, final):
            end = len(data) if final else data.rfind(b"\\n") + 1
            out = Decoded(consumed=end)
            for line in data[:end].splitlines():
                seconds, value = line.split(b",")
                out.readings.append(Reading(int(seconds) * 1_000_000, "air_temperature",
                                            float(value), "degC", "v"))
            return out

    @hookimpl
    def obslink_register_formats(registry):
        registry.add_format(PairsAdapter)
''')


@pytest.fixture
def third_party_site(tmp_path):
    """An installed third-party plugin: a module and its dist-info with an entry point."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "obslink_pairs.py").write_text(THIRD_PARTY)
    info = site / "obslink_pairs-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: obslink-pairs\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text("[obslink]\npairs = obslink_pairs\n")
    return site


def run_obslink(args, site=None):
    env = dict(os.environ)
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "obslink", *args], capture_output=True,
                          text=True, env=env)


def test_third_party_plugin_is_found_listed_and_usable(third_party_site, tmp_path):
    listing = run_obslink(["plugins", "--json"], third_party_site)
    assert listing.returncode == 0, listing.stderr
    data = json.loads(listing.stdout)
    plugins = {p["name"]: p for p in data["plugins"]}
    assert plugins["pairs"]["version"] == "0.3"
    assert plugins["pairs"]["hooks"] == ["obslink_register_formats"]
    assert set(DEFAULT_PLUGINS) <= set(plugins)
    assert data["formats"]["pairs"] == "seconds-since-epoch,value lines"
    sample = tmp_path / "p.txt"
    sample.write_text("0,1.5\n60,2.5\n")
    parsed = run_obslink(["parse", str(sample), "--format", "pairs", "--json"],
                         third_party_site)
    assert parsed.returncode == 0, parsed.stderr
    assert [json.loads(line)["observed_at"] for line in parsed.stdout.splitlines()] == [
        "1970-01-01T00:00:00Z", "1970-01-01T00:01:00Z"]


def test_builtin_plugins_register_through_the_hooks():
    registry = load_registry(make_plugin_manager(load_entry_points=False))
    assert registry.formats["toa5"] is TOA5Adapter
    assert "directory" in registry.sources


def test_obslink_register_formats_conflicting_names_fail_loudly():
    manager = make_plugin_manager(load_entry_points=False)
    impostor = types.ModuleType("impostor")

    class Fake(TOA5Adapter):
        pass

    impostor.obslink_register_formats = hookimpl(lambda registry: registry.add_format(Fake))
    manager.register(impostor, name="impostor")
    with pytest.raises(PluginConflictError, match="registered twice"):
        load_registry(manager)


def test_obslink_register_sources_conflicting_types_fail_loudly():
    manager = make_plugin_manager(load_entry_points=False)
    from obslink.plugins.directory_source import DirectorySource

    class Other(DirectorySource):
        pass

    impostor = types.ModuleType("impostor2")
    impostor.obslink_register_sources = hookimpl(lambda registry: registry.add_source(Other))
    manager.register(impostor, name="impostor2")
    with pytest.raises(PluginConflictError, match="source type 'directory'"):
        load_registry(manager)


def test_misspelt_hook_fails_at_check_pending():
    manager = pluggy.PluginManager("obslink")
    manager.add_hookspecs(hookspecs)
    typo = types.ModuleType("typo")
    typo.obslink_register_format = hookimpl(lambda registry: None)  # missing "s"
    manager.register(typo)
    with pytest.raises(pluggy.PluginValidationError):
        manager.check_pending()


def test_obslink_register_qc_checks_adds_a_third_party_check_to_the_runner():
    from obslink.plugins.qc import QCCheck
    from obslink.plugins.qc_limits import default_settings
    from obslink.plugins.qc_runner import QCRunner
    from obslink.readings import Reading, now_us

    class BatteryLow(QCCheck):
        name = "battery_low"
        summary = "suspect below 11.5 V"

        def run(self, readings, origin, state):
            return [None if r.element != "battery_voltage" or r.value is None
                    else int(r.value < 11.5) for r in readings]

    manager = make_plugin_manager(load_entry_points=False)
    plugin = types.ModuleType("battery_plugin")
    plugin.obslink_register_qc_checks = hookimpl(
        lambda registry: registry.add_qc_check(BatteryLow))
    manager.register(plugin, name="battery_plugin")
    registry = load_registry(manager)
    assert {"range", "step", "persistence", "consistency", "source_flags", "time",
            "battery_low"} == set(registry.qc_checks)
    qc = QCRunner.from_registry(registry, default_settings())
    low = qc.annotate([Reading(now_us(), "battery_voltage", 11.2, "V", "BattV")], "logger")[0]
    assert low.qc == 1 and low.qc_failed == 1 << qc.names.index("battery_low")

    impostor = types.ModuleType("impostor3")
    impostor.obslink_register_qc_checks = hookimpl(
        lambda registry: registry.add_qc_check(type("Range", (BatteryLow,), {"name": "range"})))
    manager.register(impostor, name="impostor3")
    with pytest.raises(PluginConflictError, match="QC check 'range'"):
        load_registry(manager)


def test_a_plugin_that_raises_costs_its_file_not_the_source(third_party_site, tmp_path):
    """The pairs plugin raises on a line it cannot split: the agent quarantines that file,
    naming the plugin, and reads the source's next file; parse says the same."""
    from tests.conftest import wait_until

    logger = tmp_path / "logger"
    logger.mkdir()
    (logger / "a_bad.txt").write_text("0,1.5\noops\n")
    (logger / "b_good.txt").write_text("60,2.5\n120,3.5\n")
    os.utime(logger / "a_bad.txt", (1, 1))  # read first
    assert run_obslink(["agent", "keygen", "--private", str(tmp_path / "s.key")]).returncode == 0
    config = tmp_path / "agent.toml"
    config.write_text(f'[station]\nid = "P1"\nprivate_key = "s.key"\n'
                      f'[uplink]\nbroker = "mqtt://127.0.0.1:9"\n'  # nobody there: it buffers
                      f'[sources.logger]\ntype = "directory"\nformat = "pairs"\n'
                      f'path = "{logger}"\nsettle_seconds = 0.1\npoll_interval = 0.1\n')
    env = dict(os.environ, PYTHONPATH=str(third_party_site))
    agent = subprocess.Popen([sys.executable, "-m", "obslink", "agent", "run", str(config)],
                             env=env, stderr=subprocess.PIPE, text=True)
    try:
        def status():
            done = run_obslink(["agent", "status", str(config), "--json"], third_party_site)
            return json.loads(done.stdout) if done.returncode == 0 else None
        found = wait_until(lambda: (s := status()) and s["unacked_readings"] == 2 and
                           s["quarantined_records"] == 1 and s, timeout=30,
                           message="the good file read and the bad one quarantined")
        reason = found["recent_quarantine"][0]["reason"]
        assert "format plugin obslink_pairs (pairs 0.3) failed on these 11 bytes" in reason
        assert "ValueError" in reason
    finally:
        agent.terminate()
        log = agent.communicate(timeout=15)[1]
    assert agent.returncode == 0, log
    assert "Traceback" not in log and "format plugin obslink_pairs" in log

    parsed = run_obslink(["parse", str(logger / "a_bad.txt"), "--format", "pairs"],
                         third_party_site)
    assert parsed.returncode == 1 and "Traceback" not in parsed.stderr
    assert "format plugin obslink_pairs (pairs 0.3) failed" in parsed.stderr


def test_obslink_register_catalog_backends_picks_a_backend_by_the_urls_scheme(tmp_path):
    from obslink.errors import StorageError
    from obslink.server.catalog import Station, open_catalog
    from obslink.server.catalog.backends import SERVER_PLUGINS
    from obslink.server.catalog.sqlite import SQLiteCatalog

    class MemoCatalog(SQLiteCatalog):
        """A third-party backend: ``memo://name`` is a SQLite file in tmp_path."""
        schemes = ("memo",)

        @classmethod
        def open(cls, url):
            return cls(tmp_path / url.removeprefix("memo://"))

    manager = make_plugin_manager(load_entry_points=False, extra_builtins=SERVER_PLUGINS)
    plugin = types.ModuleType("memo_backend")
    plugin.obslink_register_catalog_backends = hookimpl(
        lambda registry: registry.add_catalog_backend(MemoCatalog))
    manager.register(plugin, name="memo_backend")
    registry = load_registry(manager)
    memo = open_catalog("memo://one.db", registry)
    assert type(memo) is MemoCatalog
    memo.add_station(Station("M1", "net"), None, None)
    memo.close()
    assert (tmp_path / "one.db").exists()
    plain = open_catalog(tmp_path / "two.db", registry)  # a bare path is SQLite's
    assert type(plain) is SQLiteCatalog
    plain.close()
    with pytest.raises(StorageError, match=r"no catalog backend opens ftp:// URLs; installed: "
                       r"memo://, postgres://, postgresql://, sqlite://"):
        open_catalog("ftp://x/y", registry)
    # the built-in PostgreSQL backend: a server that is not there is named, its password not
    with pytest.raises(StorageError, match=r"cannot reach the PostgreSQL catalog "
                       r"postgresql://obslink:\*\*\*@127.0.0.1:1/obslink: .*check that the "
                       r"server runs") as unreachable:
        open_catalog("postgresql://obslink:secret@127.0.0.1:1/obslink", registry)
    assert "secret" not in str(unreachable.value)

    impostor = types.ModuleType("impostor4")
    impostor.obslink_register_catalog_backends = hookimpl(
        lambda registry: registry.add_catalog_backend(type("Other", (MemoCatalog,), {})))
    manager.register(impostor, name="impostor4")
    with pytest.raises(PluginConflictError, match="catalog backend for 'memo'"):
        load_registry(manager)


def test_obslink_register_http_routes_adds_a_plugins_endpoint_beside_the_enrolment(tmp_path):
    """A plugin's router joins the collector's HTTP API next to the built-in enrolment
    route, and its handler finds the API's context; a second claim on a route is refused."""
    import threading

    import requests
    import uvicorn
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from obslink.demo.broker import free_port
    from obslink.server.catalog.backends import SERVER_PLUGINS
    from obslink.server.http_api import HTTP_PLUGINS, context_of, create_app
    from tests.conftest import make_account, wait_until

    router = APIRouter()

    @router.get("/v1/where")
    def where(request: Request) -> dict:
        return {"broker": context_of(request).broker_url}

    def registry_with(*routers):
        manager = make_plugin_manager(load_entry_points=False,
                                      extra_builtins=SERVER_PLUGINS + HTTP_PLUGINS)
        for index, extra in enumerate(routers):
            plugin = types.ModuleType(f"routes_{index}")
            plugin.obslink_register_http_routes = hookimpl(
                lambda registry, extra=extra: registry.add_http_routes(extra))
            manager.register(plugin, name=f"routes_{index}")
        return load_registry(manager)

    keys = (Ed25519PrivateKey.generate().public_key(), X25519PrivateKey.generate().public_key())
    app = create_app(tmp_path / "catalog.db", "mqtts://broker.example:8883", *keys,
                     registry_with(router))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, message="the API to listen")
        base = f"http://127.0.0.1:{port}"
        # a plugin's route is behind the login as every route is (docs/access.md)
        assert requests.get(f"{base}/v1/where", timeout=10).status_code == 401
        token = make_account(tmp_path / "catalog.db", "reader", "data-user")
        assert requests.get(f"{base}/v1/where", timeout=10, headers={
            "Authorization": f"Bearer {token}"}).json() == {
            "broker": "mqtts://broker.example:8883"}
        paths = requests.get(f"{base}/openapi.json", timeout=10).json()["paths"]
        assert {"/v1/enrol", "/v1/where"} <= set(paths)
    finally:
        server.should_exit = True
        thread.join(timeout=10)

    clash = APIRouter()
    clash.post("/v1/enrol")(lambda: {})
    with pytest.raises(PluginConflictError, match="POST /v1/enrol is registered by two"):
        create_app(tmp_path / "catalog.db", "mqtt://x", *keys, registry_with(clash))
