"""Agent configuration: a TOML file a technician edits, validated with every error's key path.
The settings themselves are declared in obslink.agent.settings."""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from obslink.agent.outbox import OutboxLimits
from obslink.agent.settings import OUTBOX, PRODUCTS, SOURCE, STATION, UPLINK
from obslink.errors import ConfigError
from obslink.plugins.formats import AdapterContext
from obslink.plugins.qc import QCSettings
from obslink.plugins.qc_limits import QC_KEYS, default_settings, read_qc_section
from obslink.plugins.registry import PluginRegistry
from obslink.plugins.vocabulary import ELEMENTS
from obslink.settings import default_of, declared, read_settings

DECLARED = {"station": STATION, "outbox": OUTBOX, "uplink": UPLINK}
SECTIONS = {name: {s.key for s in settings} for name, settings in DECLARED.items()}
SECTIONS["qc"] = QC_KEYS  # read by obslink.plugins.qc_limits
SOURCE_KEYS = {s.key for s in SOURCE}
PRODUCT_KEYS = {s.key for s in PRODUCTS}
# [uplink] settings that AgentConfig holds under their own name, as read
PLAIN_UPLINK_SETTINGS = ("keepalive", "ack_timeout", "ack_timeout_max", "max_in_flight",
                         "realtime_window", "backlog_in_flight", "backlog_bundle", "protocol",
                         "encrypt_to", "backlog_readings_per_s", "backlog_bytes_per_s",
                         "reconnect_min", "reconnect_max", "product_bytes_per_s",
                         "product_in_flight", "product_chunk_bytes")


@dataclass(frozen=True)
class SourceConfig:
    name: str
    type: str
    format: str
    settings: dict[str, Any]  # the source type's own settings (path, pattern, …)
    adapter_context: AdapterContext


@dataclass(frozen=True)
class ProductSourceConfig:
    name: str
    format: str
    settings: dict[str, Any]  # path, pattern, settle_seconds, poll_interval


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
    # defaults as declared (code that builds a config itself, such as a benchmark, gets them)
    ack_timeout_max: float = default_of(UPLINK, "ack_timeout_max")
    realtime_window: float = default_of(UPLINK, "realtime_window")
    backlog_in_flight: int = default_of(UPLINK, "backlog_in_flight")
    backlog_bundle: int = default_of(UPLINK, "backlog_bundle")
    protocol: int = default_of(UPLINK, "protocol")
    backlog_readings_per_s: float = default_of(UPLINK, "backlog_readings_per_s")
    backlog_bytes_per_s: float = default_of(UPLINK, "backlog_bytes_per_s")
    encrypt_to: str | None = None  # the collector's X25519 public key (hex): seal messages
    tls: bool = False  # mqtts:// broker URL
    ca_file: Path | None = None  # CA that signed the broker's certificate (default: system)
    username: str | None = None  # broker account (a closed broker: the station id)
    password_file: Path | None = None
    qc: QCSettings = field(default_factory=default_settings)
    metrics_listen: str | None = None  # HOST:PORT of the agent's Prometheus metrics
    products: list[ProductSourceConfig] = field(default_factory=list)
    product_max_bytes: int = default_of(OUTBOX, "product_max_bytes")
    product_dir: Path | None = None  # None: <outbox path>.products
    product_bytes_per_s: float = default_of(UPLINK, "product_bytes_per_s")
    product_in_flight: int = default_of(UPLINK, "product_in_flight")
    product_chunk_bytes: int = default_of(UPLINK, "product_chunk_bytes")

    @property
    def product_directory(self) -> Path:
        return self.product_dir or Path(str(self.outbox_path) + ".products")


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

    def build(self, raw: dict, path: Path, registry: PluginRegistry) -> AgentConfig:
        self.unknown_keys(raw, set(SECTIONS) | {"sources", "products"}, "")
        tables = {name: self.table(raw, name, required=name == "station")
                  for name in DECLARED}
        for name, table in tables.items():
            self.unknown_keys(table, SECTIONS[name], f"{name}.")
        qc, qc_problems = read_qc_section(raw.get("qc", {}), set(registry.qc_checks))
        self.problems += qc_problems
        station_s, outbox_s, uplink_s = (
            read_settings(DECLARED[name], tables[name], f"{name}.", self.fail, self.base)
            for name in DECLARED)
        station, network = station_s["id"], station_s["network"]
        broker_host, broker_port, tls = uplink_s["broker"]
        ca_file = uplink_s["ca_file"]
        if ca_file is not None:
            if not tls:
                self.fail("uplink.ca_file", "is only used with a TLS broker URL "
                          "(mqtts://host:8883)")
            elif not Path(ca_file).is_file():
                self.fail("uplink.ca_file", f"{ca_file} does not exist; copy the network's "
                          "ca.pem (from `obslink collector tls init`) to the gateway")
        client_id = uplink_s["client_id"] or f"obslink-agent-{network}-{station}"
        if uplink_s["ack_timeout_max"] < uplink_s["ack_timeout"]:
            self.fail("uplink.ack_timeout_max", f"{uplink_s['ack_timeout_max']:g} is below "
                      f"ack_timeout {uplink_s['ack_timeout']:g}; the wait between "
                      "re-publications only grows")
        if uplink_s["backlog_in_flight"] > uplink_s["max_in_flight"]:
            self.fail("uplink.backlog_in_flight", f"{uplink_s['backlog_in_flight']} is above "
                      f"max_in_flight {uplink_s['max_in_flight']}; the backlog shares that "
                      "window with live data: lower backlog_in_flight or raise max_in_flight")
        username, password_file = uplink_s["username"], uplink_s["password_file"]
        if (username is None) != (password_file is None):
            self.fail("uplink.username", "username and password_file go together (the "
                      "station's broker account, from `obslink agent enrol` or the operator)")
        elif password_file is not None and not Path(password_file).is_file():
            self.fail("uplink.password_file", f"{password_file} does not exist")
        limits = OutboxLimits(outbox_s["max_bytes"], outbox_s["max_age"], outbox_s["evict"],
                              outbox_s["min_free_disk"] or None)

        sources_t, products_t = raw.get("sources", {}), raw.get("products", {})
        if not isinstance(products_t, dict):
            self.fail("products", "must be tables: [products.NAME]")
            products_t = {}
        if not isinstance(sources_t, dict) or not (sources_t or products_t):
            self.fail("sources", "at least one [sources.NAME] (observations) or "
                      "[products.NAME] (radar products) section is needed")
            sources_t = {}
        sources = [self.source(name, table, registry, station, station_s["utc_offset"])
                   for name, table in sources_t.items()]
        return AgentConfig(
            path=path, station=station, network=network,
            private_key=_path(station_s["private_key"]),
            outbox_path=_path(outbox_s["path"]), synchronous=outbox_s["synchronous"],
            max_batch_readings=outbox_s["max_batch_readings"], broker_host=broker_host,
            broker_port=broker_port, client_id=str(client_id), tls=tls,
            ca_file=_path(ca_file), password_file=_path(password_file),
            username=None if username is None else str(username),
            sources=[s for s in sources if s is not None], qc=qc, limits=limits,
            metrics_listen=station_s["metrics_listen"],
            products=[p for p in (self.product_source(name, table, registry)
                                  for name, table in products_t.items()) if p is not None],
            product_max_bytes=outbox_s["product_max_bytes"],
            product_dir=_path(outbox_s["product_dir"]),
            **{key: uplink_s[key] for key in PLAIN_UPLINK_SETTINGS})

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
            own = source_class.declared_settings
            self.unknown_keys(settings, {s.key for s in own}, prefix)
            settings.update(read_settings(own, settings, prefix, self.fail, self.base))
            for key, message in source_class.check_settings(settings):
                self.fail(prefix + key, message)
        offset = declared(SOURCE, "utc_offset").read(table, prefix, self.fail)
        if offset is None:  # not given (or not readable, which the problems say)
            offset = station_offset
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

    def product_source(self, name: str, table: Any,
                       registry: PluginRegistry) -> ProductSourceConfig | None:
        prefix = f"products.{name}."
        if not isinstance(table, dict):
            self.fail(f"products.{name}", "must be a table")
            return None
        self.unknown_keys(table, PRODUCT_KEYS, prefix)
        settings = read_settings(PRODUCTS, table, prefix, self.fail, self.base)
        format_name = settings.get("format")
        if format_name is not None and format_name not in registry.product_formats:
            self.fail(prefix + "format", self._choice(format_name, "product format", "how "
                      "its products are read", registry.product_formats))
        return ProductSourceConfig(name, str(format_name), settings)

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


def _path(value: str | None) -> Path | None:
    return None if value is None else Path(value)
