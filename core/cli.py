"""The ``obslink`` command. Sub-commands import what they need when they run."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from obslink import __version__
from obslink.errors import ConfigError, ObslinkError


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return args.run(args) or 0
    except ConfigError as exc:
        where = f"{exc.source}: " if exc.source else ""
        print(f"error: {where}configuration has {len(exc.problems)} problem(s):",
              file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except ObslinkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `obslink parse … | head`: the reader has seen enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def configure_logging(level: str) -> None:
    logging.Formatter.converter = time.gmtime
    logging.basicConfig(level=getattr(logging, level.upper()), stream=sys.stderr,
                        format="%(asctime)sZ %(levelname)s %(name)s: %(message)s")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="obslink", description="Signed, buffered transport of station observations "
        "from gateways into a central data catalog.")
    parser.add_argument("--version", action="version", version=f"obslink {__version__}")
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"])
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    plugins = commands.add_parser("plugins", help="list installed plugins with their hooks")
    plugins.add_argument("--json", action="store_true", help="print JSON")
    plugins.set_defaults(run=cmd_plugins)

    parse = commands.add_parser("parse", help="decode a logger file and show its readings",
                                description="Decode FILE with a format adapter and print "
                                "its readings; bad records are reported with line and reason.")
    parse.add_argument("file", type=Path)
    parse.add_argument("--format", default=None,
                       help="format name (see `obslink plugins`), or auto to recognise it; "
                       "not needed with --config")
    parse.add_argument("--tz", default="UTC", help="logger UTC offset, e.g. +08:00 (default UTC)")
    parse.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                       help="a format option; repeat for several")
    parse.add_argument("--station", default="", help="station id to attach to the readings")
    parse.add_argument("--json", action="store_true", help="one JSON object per reading")
    parse.add_argument("--config", type=Path, default=None,
                       help="a station's agent config: decode and run QC exactly as that "
                       "config's source does (format, options, element mapping, UTC offset, "
                       "QC limits)")
    parse.add_argument("--source", default=None,
                       help="with --config: which of its sources (default: the only one, or "
                       "the one whose directory holds FILE)")
    parse.set_defaults(run=cmd_parse)

    agent = commands.add_parser("agent", help="the station gateway agent").add_subparsers(
        title="agent commands", metavar="COMMAND")
    keygen = agent.add_parser("keygen", help="create the station's Ed25519 key pair")
    keygen.add_argument("--private", type=Path, default=Path("station.key"),
                        help="private key file to write (mode 0600; default station.key)")
    keygen.add_argument("--public", type=Path, default=None,
                        help="public key file (default: private key path with .pub)")
    keygen.add_argument("--force", action="store_true", help="overwrite existing files")
    keygen.set_defaults(run=cmd_agent_keygen)
    check = agent.add_parser("check", help="validate an agent config without running it")
    check.add_argument("config", type=Path)
    check.set_defaults(run=cmd_agent_check)
    run = agent.add_parser("run", help="run the agent")
    run.add_argument("config", type=Path)
    run.set_defaults(run=cmd_agent_run)
    recover = agent.add_parser(
        "recover", help="rebuild a damaged outbox from what can still be read",
        description="Stop the agent first. Reads every readable batch, source position, QC "
        "history, quarantined record and gap of the outbox into a new outbox with the same "
        "identity, and moves the damaged file aside (OUTBOX.damaged-TIME).")
    recover.add_argument("config", type=Path)
    recover.set_defaults(run=cmd_agent_recover)
    status = agent.add_parser("status", help="outbox depth, last ack, quarantined records")
    status.add_argument("config", type=Path)
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(run=cmd_agent_status)

    collector = commands.add_parser("collector", help="the central collector").add_subparsers(
        title="collector commands", metavar="COMMAND")
    serve = collector.add_parser("serve", help="verify, commit and acknowledge batches")
    serve.add_argument("--db", required=True, type=Path, help="catalog (SQLite file)")
    serve.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="broker URL")
    serve.add_argument("--group", default="collectors",
                       help="shared-subscription group; workers in one group share the load")
    serve.add_argument("--network", default="+", help="only this network (default: all)")
    serve.add_argument("--client-id", default=None,
                       help="MQTT client id (default obslink-collector-GROUP; give each "
                       "worker its own)")
    serve.set_defaults(run=cmd_collector_serve)
    station = collector.add_parser("station", help="stations").add_subparsers(
        title="station commands", metavar="COMMAND")
    add = station.add_parser("add", help="register a station and its public key")
    add.add_argument("id", help="station id, e.g. WIGOS id 0-20000-0-54511")
    add.add_argument("--public-key", required=True, type=Path, help="the station's .pub file")
    add.add_argument("--db", required=True, type=Path, help="catalog (SQLite file)")
    add.add_argument("--name")
    add.add_argument("--lat", type=float)
    add.add_argument("--lon", type=float)
    add.add_argument("--interval", type=int, help="expected reporting interval, seconds")
    add.add_argument("--network", default="default")
    add.set_defaults(run=cmd_station_add)

    catalog = commands.add_parser("catalog", help="query the catalog").add_subparsers(
        title="catalog commands", metavar="COMMAND")
    stats = catalog.add_parser("stats", help="counts of stations, batches, observations")
    stats.add_argument("--db", required=True, type=Path)
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(run=cmd_catalog_stats)
    gaps = catalog.add_parser("gaps", help="data stations evicted from their outbox (caps, "
                              "disk full), as they reported it")
    gaps.add_argument("--db", required=True, type=Path)
    gaps.add_argument("--station", default=None, help="only this station")
    gaps.add_argument("--json", action="store_true")
    gaps.set_defaults(run=cmd_catalog_gaps)
    qc = catalog.add_parser("qc", help="QC summary of a station: counts per flag and check, "
                            "coverage")
    qc.add_argument("--db", required=True, type=Path)
    qc.add_argument("--station", required=True, help="station id")
    qc.add_argument("--since", default=None,
                    help="only observations at or after this time: ISO 8601 UTC "
                    "(2026-11-22, 2026-11-22T06:00Z) or an age such as 24h, 7d, 90m")
    qc.add_argument("--json", action="store_true")
    qc.set_defaults(run=cmd_catalog_qc)

    demo = commands.add_parser("demo", help="broker + collector + simulated stations, end "
                               "to end, with a summary")
    demo.add_argument("--stations", type=int, default=3, help="simulated stations (default 3)")
    demo.add_argument("--duration", type=float, default=20.0,
                      help="seconds of simulated reporting (default 20)")
    demo.add_argument("--speed", type=float, default=120.0,
                      help="simulated seconds per real second (default 120: a one-minute "
                      "logger writes every 0.5 s)")
    demo.add_argument("--dir", type=Path, default=None,
                      help="keep everything (catalog, outboxes, logs) here; default a temp dir")
    demo.add_argument("--json", action="store_true", help="print the summary as JSON")
    demo.set_defaults(run=cmd_demo)
    return parser


# --- plugins & parse ---------------------------------------------------------------------------


def cmd_plugins(args) -> int:
    from obslink.plugins.registry import describe_plugins, load_registry, make_plugin_manager

    manager = make_plugin_manager()
    infos = describe_plugins(manager)
    registry = load_registry(manager)
    if args.json:
        print(json.dumps({"plugins": [info.__dict__ for info in infos],
                          "formats": {n: c.summary for n, c in registry.formats.items()},
                          "sources": {n: c.summary for n, c in registry.sources.items()},
                          "qc_checks": {n: c.summary for n, c in registry.qc_checks.items()}},
                         indent=2))
        return 0
    for info in infos:
        print(f"{info.name} {info.version or ''}".rstrip())
        print(f"    hooks: {', '.join(info.hooks)}")
    print("\nformats:")
    for name, cls in sorted(registry.formats.items()):
        print(f"    {name:<12} {cls.summary}")
    print("source types:")
    for name, cls in sorted(registry.sources.items()):
        print(f"    {name:<12} {cls.summary}")
    print("QC checks:")
    for name, cls in sorted(registry.qc_checks.items()):
        print(f"    {name:<12} {cls.summary}")
    return 0


def parse_options(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--option {pair!r} must look like KEY=VALUE")
        options[key.strip()] = value
    return options


def cmd_parse(args) -> int:
    from obslink.parse_file import parse_file, plan_from_arguments, plan_from_config
    from obslink.plugins.registry import load_registry

    if not args.file.is_file():
        raise ConfigError(f"{args.file}: no such file")
    registry = load_registry()
    if args.config is not None:
        if args.option or args.tz != "UTC" or args.station:
            raise ConfigError("--config sets the options, UTC offset and station; drop "
                              "--option, --tz and --station")
        plan = plan_from_config(args.file, args.config, args.source, args.format, registry,
                                sys.stderr)
    else:
        if args.source is not None:
            raise ConfigError("--source picks a source of a station config; give --config")
        plan = plan_from_arguments(args.file, args.format, args.tz,
                                   parse_options(args.option), args.station, registry,
                                   sys.stderr)
    return parse_file(args.file, plan, registry, as_json=args.json)


# --- agent -------------------------------------------------------------------------------------


def _load_agent_config(path: Path):
    from obslink.agent.config import load_config
    from obslink.plugins.registry import load_registry

    registry = load_registry()
    return load_config(path, registry), registry


def cmd_agent_keygen(args) -> int:
    from obslink.keys import write_keypair

    public = args.public or args.private.with_suffix(".pub")
    kid = write_keypair(args.private, public, overwrite=args.force)
    print(f"wrote private key {args.private} (mode 0600) and public key {public}")
    print(f"key id {kid}; register it at the collector with:\n"
          f"  obslink collector station add STATION_ID --public-key {public} --db CATALOG")
    return 0


def cmd_agent_check(args) -> int:
    config, registry = _load_agent_config(args.config)
    from obslink.keys import load_private_key
    from obslink.plugins.qc_limits import DEFAULT_LIMITS

    load_private_key(config.private_key)
    print(f"{args.config}: OK — station {config.station} (network {config.network}), "
          f"{len(config.sources)} source(s): " + ", ".join(
              f"{s.name} ({s.type}, {s.format})" for s in config.sources))
    checks = config.qc.checks if config.qc.checks is not None else sorted(registry.qc_checks)
    changed = sorted(e for e, limits in config.qc.limits.items()
                     if DEFAULT_LIMITS.get(e) != limits)
    print("QC: " + (", ".join(checks) if checks else "none at the edge (the collector checks)")
          + (f"; own limits for {', '.join(changed)}" if changed else "; default limits"))
    return 0


def cmd_agent_run(args) -> int:
    from obslink.agent.runner import run_agent

    config, registry = _load_agent_config(args.config)
    return run_agent(config, registry)


def cmd_agent_recover(args) -> int:
    from obslink.agent.recover import recover_outbox

    config, _ = _load_agent_config(args.config)
    result = recover_outbox(config.outbox_path, config.station, config.synchronous)
    print(f"{config.outbox_path}: recovered {result.batches} batches ({result.readings} "
          f"readings) under epoch {result.epoch}; " + ", ".join(
              f"{count} {name}" for name, count in result.rows.items()))
    print(f"the damaged file is kept as {result.moved_to}")
    for what in result.unreadable:
        print(f"  could not be read: {what}")
    if result.rows.get("source_positions", 0) == 0:
        print("  no source positions were readable: sources read their files from the start "
              "again, so the catalog may receive some readings a second time")
    return 0


def cmd_agent_status(args) -> int:
    from obslink.agent.status import print_status

    config, _ = _load_agent_config(args.config)
    return print_status(config, as_json=args.json)


# --- collector & catalog -----------------------------------------------------------------------


def _broker_address(url: str) -> tuple[str, int]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme != "mqtt" or not parts.hostname:
        raise ConfigError(f"--broker {url!r} is not a URL like mqtt://127.0.0.1:1883")
    return parts.hostname, parts.port or 1883


def cmd_collector_serve(args) -> int:
    import signal
    import threading

    from obslink.server.catalog import open_catalog
    from obslink.server.collector import Collector

    host, port = _broker_address(args.broker)
    catalog = open_catalog(args.db)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    Collector(catalog, host, port, args.group, args.network, args.client_id).run(stop)
    catalog.close()
    return 0


def cmd_station_add(args) -> int:
    from obslink import wire
    from obslink.keys import key_id, load_public_key, public_bytes
    from obslink.server.catalog import Station, open_catalog

    try:
        wire.check_station_id(args.id)
    except ObslinkError as exc:
        raise ConfigError(str(exc)) from None
    key = load_public_key(args.public_key)
    catalog = open_catalog(args.db)
    catalog.add_station(Station(args.id, args.network, args.name, args.lat, args.lon,
                                args.interval), public_bytes(key), key_id(key))
    catalog.close()
    print(f"station {args.id} registered with key {key_id(key)}")
    return 0


def cmd_catalog_stats(args) -> int:
    catalog = _open_existing_catalog(args.db)
    stats = catalog.stats()
    catalog.close()
    if args.json:
        print(json.dumps(stats))
    else:
        for key, value in stats.items():
            print(f"{key:<14}{value}")
    return 0


def _open_existing_catalog(path: Path):
    from obslink.server.catalog import open_catalog

    if not path.exists():
        raise ConfigError(f"--db {path}: no catalog there; start `obslink collector serve "
                          f"--db {path}` or check the path")
    return open_catalog(path)


def cmd_catalog_gaps(args) -> int:
    catalog = _open_existing_catalog(args.db)
    try:
        gaps = catalog.gaps(args.station)
    finally:
        catalog.close()
    if args.json:
        print(json.dumps(gaps, indent=2))
        return 0
    if not gaps:
        print("no gaps reported" + (f" by {args.station}" if args.station else ""))
    for gap in gaps:
        print(f"{gap['station']}: {gap['first_observed']} .. {gap['last_observed']}: "
              f"{gap['readings']} readings in {gap['batches']} batches evicted "
              f"({gap['reason']}) at {gap['evicted_at']}")
    return 0


def cmd_catalog_qc(args) -> int:
    from obslink.server.qc_report import parse_since, print_report, qc_report

    since = parse_since(args.since) if args.since else None
    catalog = _open_existing_catalog(args.db)
    try:
        report = qc_report(catalog, args.station, since)
    finally:
        catalog.close()
    print_report(report, as_json=args.json)
    return 0


def cmd_demo(args) -> int:
    from obslink.demo import run_demo

    return run_demo(args.stations, args.duration, args.speed, args.dir, as_json=args.json)
