"""Agent configuration: a TOML file a technician edits, validated with every error's key path."""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from obslink.agent.outbox import EVICTION_POLICIES, OutboxLimits
from obslink.errors import ConfigError, WireError
from obslink.plugins.formats import AdapterContext
from obslink.plugins.qc import QCSettings
from obslink.plugins.qc_limits import QC_KEYS, default_settings, read_qc_section
from obslink.plugins.registry import PluginRegistry
from obslink.plugins.vocabulary import ELEMENTS
from obslink.readings import parse_utc_offset
from obslink.mqtt_tcp import parse_broker_url
from obslink.keys import x25519_public_key_from_hex
from obslink.wire import MAX_BUNDLE_BATCHES, NETWORK_RE, check_station_id

SECTIONS = {
    "station": {"id", "network", "private_key", "utc_offset"},
    "outbox": {"path", "synchronous", "max_batch_readings", "max_bytes", "max_age", "evict",
               "min_free_disk"},
    "uplink": {"broker", "client_id", "keepalive", "ack_timeout", "ack_timeout_max",
               "max_in_flight", "reconnect_min", "reconnect_max", "realtime_window",
               "backlog_in_flight", "backlog_bundle", "backlog_readings_per_s",
               "backlog_bytes_per_s", "encrypt_to", "ca_file", "username", "password_file"},
    "qc": QC_KEYS,  # read by obslink.plugins.qc_limits
}
SOURCE_KEYS = {"type", "format", "utc_offset", "options", "elements"}


@dataclass(frozen=True)
class SourceConfig:
    name: str
    type: str
    format: str
    settings: dict[str, Any]  # the source type's own settings (path, pattern, …)
    adapter_context: AdapterContext


@dataclass(frozen=True)
class AgentConfig:
    path: Path
    station: str
    network: str
    private_key: Path
    outbox_path: Path
    synchronous: str
    max_batch_readings: int
    broker_host: str
    broker_port: int
    client_id: str
    keepalive: int
    ack_timeout: float
    max_in_flight: int
    reconnect_min: float
    reconnect_max: float
    sources: list[SourceConfig] = field(default_factory=list)
    limits: OutboxLimits = field(default_factory=OutboxLimits)
    ack_timeout_max: float = 600.0
    realtime_window: float = 600.0
    backlog_in_flight: int = 2
    backlog_bundle: int = 32
    backlog_readings_per_s: float = 5000.0
    backlog_bytes_per_s: float = 0.0
    encrypt_to: str | None = None  # the collector's X25519 public key (hex): seal messages
    tls: bool = False  # mqtts:// broker URL
    ca_file: Path | None = None  # CA that signed the broker's certificate (default: system)
    username: str | None = None  # broker account (a closed broker: the station id)
    password_file: Path | None = None
    qc: QCSettings = field(default_factory=default_settings)


def load_config(path: str | Path, registry: PluginRegistry) -> AgentConfig:
    """Read and validate a config file; raise ConfigError listing every problem."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("no such file; copy one from firmware_configs/ and edit it",
                          str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", str(path)) from None
    checker = _Checker(path.parent)
    config = checker.build(raw, path, registry)
    if checker.problems:
        raise ConfigError(checker.problems, str(path))
    return config


class _Checker:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.problems: list[str] = []

    def fail(self, key: str, message: str) -> None:
        self.problems.append(f"{key}: {message}")

    def unknown_keys(self, table: dict, allowed: set[str], prefix: str) -> None:
        for key in table:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else \
                    f"; known keys: {', '.join(sorted(allowed))}"
                self.fail(f"{prefix}{key}", f"unknown key{hint}")

    def table(self, raw: dict, name: str, required: bool = False) -> dict:
        value = raw.get(name, {})
        if not isinstance(value, dict):
            self.fail(name, "must be a table ([" + name + "])")
            return {}
        if required and not value:
            self.fail(name, f"required section [{name}] is missing")
        return value

    def number(self, table: dict, key: str, prefix: str, default, kind=float, minimum=0,
               zero_means: str | None = None):
        """A number above ``minimum``; with ``zero_means``, 0 is allowed and means that."""
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                kind is int and not isinstance(value, int)) or not (
                value > minimum or (zero_means and value == 0)):
            also = f" (or 0: {zero_means})" if zero_means else ""
            self.fail(f"{prefix}{key}", f"must be a {'whole ' if kind is int else ''}number "
                                        f"greater than {minimum}{also}, not {value!r}")
            return default
        return kind(value)

    def offset(self, value: Any, key: str) -> int:
        try:
            return parse_utc_offset(str(value))
        except ValueError as exc:
            self.fail(key, str(exc))
            return 0

    def file_path(self, value: Any, key: str, default: str | None = None) -> Path:
        if value is None:
            value = default
        if not isinstance(value, str) or not value:
            self.fail(key, "required: a file path (relative paths are relative to the config)")
            return Path()
        return (self.base / Path(value).expanduser()).resolve()

    def build(self, raw: dict, path: Path, registry: PluginRegistry) -> AgentConfig:
        self.unknown_keys(raw, set(SECTIONS) | {"sources"}, "")
        station_t = self.table(raw, "station", required=True)
        outbox_t = self.table(raw, "outbox")
        uplink_t = self.table(raw, "uplink")
        for name, table in (("station", station_t), ("outbox", outbox_t), ("uplink", uplink_t)):
            self.unknown_keys(table, SECTIONS[name], f"{name}.")
        qc, qc_problems = read_qc_section(raw.get("qc", {}), set(registry.qc_checks))
        self.problems += qc_problems

        station = station_t.get("id", "")
        try:
            check_station_id(station)
        except WireError as exc:
            self.fail("station.id", str(exc) if station else "required: the station's id, "
                      "e.g. its WIGOS identifier 0-20000-0-54511")
        network = station_t.get("network", "default")
        if not isinstance(network, str) or not NETWORK_RE.match(network):
            self.fail("station.network", f"{network!r} is not a usable network name "
                      "(letters, digits, '.', '_', '-')")
        private_key = self.file_path(station_t.get("private_key"), "station.private_key")
        station_offset = self.offset(station_t.get("utc_offset", "UTC"), "station.utc_offset")

        synchronous = str(outbox_t.get("synchronous", "FULL")).upper()
        if synchronous not in ("FULL", "NORMAL"):
            self.fail("outbox.synchronous", f"must be FULL (survives power cuts) or NORMAL, "
                      f"not {outbox_t.get('synchronous')!r}")
        broker_host, broker_port, tls = self.broker(uplink_t.get("broker",
                                                                 "mqtt://127.0.0.1:1883"))
        ca_file = uplink_t.get("ca_file")
        if ca_file is not None:
            ca_file = self.file_path(ca_file, "uplink.ca_file")
            if not tls:
                self.fail("uplink.ca_file", "is only used with a TLS broker URL "
                          "(mqtts://host:8883)")
            elif not ca_file.is_file():
                self.fail("uplink.ca_file", f"{ca_file} does not exist; copy the network's "
                          "ca.pem (from `obslink collector tls init`) to the gateway")
        client_id = uplink_t.get("client_id") or f"obslink-agent-{network}-{station}"

        outbox_path = self.file_path(outbox_t.get("path"), "outbox.path", "outbox.db")
        max_batch_readings = self.number(outbox_t, "max_batch_readings", "outbox.", 5000, int)
        keepalive = self.number(uplink_t, "keepalive", "uplink.", 30, int, 4)
        ack_timeout = self.number(uplink_t, "ack_timeout", "uplink.", 30.0)
        max_in_flight = self.number(uplink_t, "max_in_flight", "uplink.", 64, int)
        reconnect_min = self.number(uplink_t, "reconnect_min", "uplink.", 1.0)
        reconnect_max = self.number(uplink_t, "reconnect_max", "uplink.", 60.0)
        ack_timeout_max = self.number(uplink_t, "ack_timeout_max", "uplink.", 600.0)
        if ack_timeout_max < ack_timeout:
            self.fail("uplink.ack_timeout_max", f"{ack_timeout_max:g} is below ack_timeout "
                      f"{ack_timeout:g}; the wait between re-publications only grows")
        realtime_window = self.number(uplink_t, "realtime_window", "uplink.", 600.0)
        backlog_in_flight = self.number(uplink_t, "backlog_in_flight", "uplink.", 2, int)
        if backlog_in_flight > max_in_flight:
            self.fail("uplink.backlog_in_flight", f"{backlog_in_flight} is above max_in_flight "
                      f"{max_in_flight}; the backlog shares that window with live data: "
                      f"lower backlog_in_flight or raise max_in_flight")
        backlog_bundle = self.number(uplink_t, "backlog_bundle", "uplink.", 32, int)
        if backlog_bundle > MAX_BUNDLE_BATCHES:
            self.fail("uplink.backlog_bundle", f"{backlog_bundle} is above "
                      f"{MAX_BUNDLE_BATCHES}, the most a collector takes in one bundle")
        backlog_readings = self.number(uplink_t, "backlog_readings_per_s", "uplink.", 5000.0,
                                       zero_means="no cap")
        backlog_bytes = self.number(uplink_t, "backlog_bytes_per_s", "uplink.", 0.0,
                                    zero_means="no cap")
        username, password_file = uplink_t.get("username"), uplink_t.get("password_file")
        if (username is None) != (password_file is None):
            self.fail("uplink.username", "username and password_file go together (the "
                      "station's broker account, from `obslink agent enrol` or the operator)")
        elif password_file is not None:
            password_file = self.file_path(password_file, "uplink.password_file")
            if not password_file.is_file():
                self.fail("uplink.password_file", f"{password_file} does not exist")
        encrypt_to = uplink_t.get("encrypt_to")
        if encrypt_to is not None:
            try:
                x25519_public_key_from_hex(str(encrypt_to))
            except ConfigError as exc:
                self.fail("uplink.encrypt_to", str(exc))
        limits = OutboxLimits(
            self.number(outbox_t, "max_bytes", "outbox.", 1 << 30, int),
            self.number(outbox_t, "max_age", "outbox.", 30 * 86_400, int),
            str(outbox_t.get("evict", "oldest")),
            self.number(outbox_t, "min_free_disk", "outbox.", 64 << 20, int,
                        zero_means="no watermark") or None)
        if limits.policy not in EVICTION_POLICIES:
            self.fail("outbox.evict", f"{limits.policy!r} is not an eviction policy; choose "
                      f"{' or '.join(EVICTION_POLICIES)} (docs/configuration.md)")

        sources_t = raw.get("sources", {})
        if not isinstance(sources_t, dict) or not sources_t:
            self.fail("sources", "at least one [sources.NAME] section is needed")
            sources_t = {}
        sources = [self.source(name, table, registry, station, station_offset)
                   for name, table in sources_t.items()]
        return AgentConfig(
            path=path, station=station, network=network, private_key=private_key,
            outbox_path=outbox_path, synchronous=synchronous,
            max_batch_readings=max_batch_readings, broker_host=broker_host,
            broker_port=broker_port, client_id=str(client_id), keepalive=keepalive,
            ack_timeout=ack_timeout, max_in_flight=max_in_flight, reconnect_min=reconnect_min,
            reconnect_max=reconnect_max, sources=[s for s in sources if s is not None], qc=qc,
            limits=limits, ack_timeout_max=ack_timeout_max, realtime_window=realtime_window,
            backlog_in_flight=backlog_in_flight, backlog_bundle=backlog_bundle,
            backlog_readings_per_s=backlog_readings,
            backlog_bytes_per_s=backlog_bytes,
            encrypt_to=str(encrypt_to) if encrypt_to is not None else None,
            tls=tls, ca_file=ca_file, username=None if username is None else str(username),
            password_file=password_file)

    def broker(self, url: Any) -> tuple[str, int, bool]:
        try:
            return parse_broker_url(str(url))
        except ValueError as exc:
            self.fail("uplink.broker", str(exc))
            return "127.0.0.1", 1883, False

    def source(self, name: str, table: Any, registry: PluginRegistry, station: str,
               station_offset: int) -> SourceConfig | None:
        prefix = f"sources.{name}."
        if not isinstance(table, dict):
            self.fail(f"sources.{name}", "must be a table")
            return None
        source_type, format_name = table.get("type"), table.get("format")
        source_class = format_class = None
        if source_type not in registry.sources:
            self.fail(prefix + "type", self._choice(source_type, "source type", "where the "
                      "data comes from", registry.sources))
        else:
            source_class = registry.sources[source_type]
        if format_name not in registry.formats:
            self.fail(prefix + "format", self._choice(format_name, "format", "how its bytes "
                      "are read", registry.formats))
        else:
            format_class = registry.formats[format_name]
        settings = {k: v for k, v in table.items() if k not in SOURCE_KEYS}
        if source_class is not None:
            self.unknown_keys(settings, set(source_class.defaults), prefix)
            for key, message in source_class.check_settings(settings):
                self.fail(prefix + key, message)
            if isinstance(settings.get("path"), str):
                settings["path"] = str(self.file_path(settings["path"], prefix + "path"))
        offset = self.offset(table["utc_offset"], prefix + "utc_offset") \
            if "utc_offset" in table else station_offset
        options = table.get("options", {})
        if not isinstance(options, dict):
            self.fail(prefix + "options", "must be a table of format options")
            options = {}
        if format_class is not None:
            try:
                format_class.resolve_options(options)
            except ConfigError as exc:
                self.fail(prefix + "options", exc.problems[0])
            for key, option in format_class.options.items():
                if option.required and not options.get(key):
                    self.fail(f"{prefix}options.{key}", f"required: {option.help}")
        return SourceConfig(name, str(source_type), str(format_name), settings,
                            AdapterContext(station, offset, options,
                                           self.elements(table.get("elements", {}), prefix)))

    @staticmethod
    def _choice(given: Any, what: str, meaning: str, installed: dict) -> str:
        choices = ", ".join(sorted(installed))
        if given is None:
            return f"required: the {what} ({meaning}), one of: {choices}"
        return f"{given!r} is not an installed {what}; choose one of: {choices}"

    def elements(self, table: Any, prefix: str) -> dict[str, tuple[str, str | None]]:
        mapping: dict[str, tuple[str, str | None]] = {}
        if not isinstance(table, dict):
            self.fail(prefix + "elements", "must be a table: source field = element")
            return mapping
        for field_name, target in table.items():
            key = f"{prefix}elements.{field_name}"
            if isinstance(target, str) and target:
                element, unit = target, None
            elif isinstance(target, dict) and isinstance(target.get("element"), str):
                element, unit = target["element"], target.get("unit")
                if unit is not None and not isinstance(unit, str):
                    self.fail(key + ".unit", "must be a unit string such as \"degC\"")
                    unit = None
            else:
                self.fail(key, 'must be an element name or { element = "...", unit = "..." }')
                continue
            if element not in ELEMENTS:
                close = difflib.get_close_matches(element, ELEMENTS, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                self.fail(key, f"{element!r} is not in the element vocabulary; {hint}"
                          "see docs/elements.md")
                continue
            mapping[field_name] = (element, unit)
        return mapping
