"""The ``obslink`` command. Sub-commands import what they need when they run."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from obslink import __version__
from obslink.errors import ConfigError, ObslinkError, ToolMissingError, TransportError
from obslink.logs import LOG_FORMATS, configure_logging
from obslink.readings import format_utc, now_us
from obslink.station_commands import add_station_commands


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return args.run(args) or 0
    except ConfigError as exc:
        if exc.source:  # a configuration file: every problem with its key path
            count = len(exc.problems)
            print(f"error: {exc.source}: configuration has {count} "
                  f"problem{'s' * (count != 1)}:", file=sys.stderr)
            for problem in exc.problems:
                print(f"  {problem}", file=sys.stderr)
        else:  # a command-line option
            for problem in exc.problems:
                print(f"error: {problem}", file=sys.stderr)
        return 2
    except ObslinkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `obslink parse … | head`: the reader has seen enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", required=True, type=Path, help="the catalog (SQLite file)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="obslink", description="Signed, buffered transport of station observations "
        "from gateways into a central data catalog.")
    parser.add_argument("--version", action="version", version=f"obslink {__version__}")
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-format", default="text", choices=LOG_FORMATS,
                        help="text (default) or json: one JSON object per line, for a "
                        "service's journal")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    plugins = commands.add_parser("plugins", help="list installed plugins with their hooks")
    plugins.add_argument("--json", action="store_true", help="print JSON")
    plugins.set_defaults(run=cmd_plugins)

    parse = commands.add_parser("parse", help="decode a logger file and show its readings",
                                description="Decode FILE with a format adapter and print "
                                "its readings; bad records are reported with line and reason.",
                                epilog="exit status: 0 every record was read; 1 a non-empty "
                                "file gave no reading (the last line says why); 2 the command "
                                "or the config is wrong; 3 readings were read and some "
                                "records quarantined")
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
    enrol = agent.add_parser("enrol", help="bind this gateway's key to its station at the "
                             "collector, with the operator's one-time token")
    enrol.add_argument("--collector", required=True,
                       help="the collector's HTTP address, e.g. https://collector.example:8080")
    enrol.add_argument("--token", required=True, help="one-time enrolment token")
    enrol.add_argument("--private", type=Path, default=Path("station.key"),
                       help="the station's private key (created if missing; default "
                       "station.key)")
    enrol.add_argument("--ca-file", type=Path, default=None,
                       help="with an https:// collector: the CA that signed its certificate "
                       "(default: the system's CAs)")
    enrol.add_argument("--save", type=Path, default=Path("enrolment.json"),
                       help="where to keep what the collector answered (default "
                       "enrolment.json)")
    enrol.set_defaults(run=cmd_agent_enrol)
    rotate = agent.add_parser("rotate-key", help="announce a new key signed by the current one "
                              "and switch to it once the collector confirms")
    rotate.add_argument("config", type=Path)
    rotate.set_defaults(run=cmd_agent_rotate_key)
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
    db_option(serve)
    serve.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="broker URL")
    serve.add_argument("--group", default="collectors",
                       help="shared-subscription group; workers in one group share the load")
    serve.add_argument("--network", default="+", help="only this network (default: all)")
    serve.add_argument("--client-id", default=None,
                       help="MQTT client id (default obslink-collector-GROUP; give each "
                       "worker its own)")
    serve.add_argument("--key-grace", default="24h",
                       help="how long a station's old key stays valid after it announced a "
                       "new one (default 24h; e.g. 90m, 7d)")
    serve.add_argument("--ca-file", type=Path, default=None,
                       help="with an mqtts:// broker: the CA that signed its certificate "
                       "(default: the system's CAs)")
    serve.add_argument("--username", default=None,
                       help="the collector's broker account (obslink-collector with "
                       "`collector broker-config`)")
    serve.add_argument("--password-file", type=Path, default=None,
                       help="file holding that account's password")
    serve.add_argument("--decryption-key", type=Path, default=None,
                       help="X25519 key that opens messages stations sealed to the collector "
                       "(created if missing; default collector-x25519.key beside the catalog)")
    serve.set_defaults(run=cmd_collector_serve)
    add_station_commands(collector, db_option)
    http = collector.add_parser("http", help="the collector's HTTP API: enrolment "
                                "(OpenAPI at /docs)")
    db_option(http)
    http.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT to listen on")
    http.add_argument("--broker-url", required=True,
                      help="the broker URL enrolled stations are told to publish to")
    http.add_argument("--collector-key", type=Path, default=None,
                      help="the collector's Ed25519 key (created if missing; default "
                      "collector.key beside the catalog)")
    http.add_argument("--tls-dir", type=Path, default=None,
                      help="serve HTTPS with server.pem and server.key from `collector tls "
                      "init` (gateways then pass --ca-file ca.pem)")
    http.set_defaults(run=cmd_collector_http)
    broker_config = collector.add_parser(
        "broker-config", help="a closed Mosquitto configuration: TLS, an account per station, "
        "an ACL keeping each station to its own topics")
    db_option(broker_config)
    broker_config.add_argument("--dir", type=Path, default=Path("broker"),
                               help="where to write mosquitto.conf, passwd, acl (default "
                               "./broker)")
    broker_config.add_argument("--tls-dir", type=Path, default=Path("tls"),
                               help="server.pem and server.key from `collector tls init`")
    broker_config.add_argument("--port", type=int, default=8883)
    broker_config.add_argument("--address", default="0.0.0.0", help="address to listen on")
    broker_config.add_argument("--user", default=None,
                               help="the account the broker runs as, which owns its files "
                               "(default: mosquitto when run as root, else yourself)")
    broker_config.set_defaults(run=cmd_broker_config)
    tls = collector.add_parser("tls", help="certificates for the broker").add_subparsers(
        title="tls commands", metavar="COMMAND")
    tls_init = tls.add_parser("init", help="create a CA and the broker's certificate")
    tls_init.add_argument("--dir", type=Path, default=Path("tls"),
                          help="where to write ca.pem, ca.key, server.pem, server.key "
                          "(default ./tls)")
    tls_init.add_argument("--host", action="append", default=[],
                          help="a name or address stations use for the broker (repeat)")
    tls_init.add_argument("--force", action="store_true", help="replace existing files")
    tls_init.set_defaults(run=cmd_tls_init)
    keys = collector.add_parser("keys", help="stations' signing keys").add_subparsers(
        title="keys commands", metavar="COMMAND")
    keys_list = keys.add_parser("list", help="keys with their station and status")
    db_option(keys_list)
    keys_list.add_argument("--station", default=None, help="only this station")
    keys_list.add_argument("--json", action="store_true")
    keys_list.set_defaults(run=cmd_keys_list)
    revoke = keys.add_parser("revoke", help="revoke a key: the collector refuses its next "
                             "batch (revoked-key)")
    revoke.add_argument("key_id", help="key id as `keys list` shows it")
    db_option(revoke)
    revoke.set_defaults(run=cmd_keys_revoke)
    refusals = collector.add_parser("refusals", help="messages the collector refused, counted "
                                    "per reason, newest first")
    db_option(refusals)
    refusals.add_argument("--station", default=None, help="only this station")
    refusals.add_argument("--since", default=None,
                          help="only refusals at or after this time: ISO 8601 UTC or an age "
                          "such as 24h, 7d, 90m")
    refusals.add_argument("--limit", type=int, default=20, help="newest refusals listed")
    refusals.add_argument("--json", action="store_true")
    refusals.set_defaults(run=cmd_refusals)

    catalog = commands.add_parser("catalog", help="query the catalog").add_subparsers(
        title="catalog commands", metavar="COMMAND")
    stats = catalog.add_parser("stats", help="counts of stations, batches, observations")
    db_option(stats)
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(run=cmd_catalog_stats)
    gaps = catalog.add_parser("gaps", help="data stations evicted from their outbox (caps, "
                              "disk full), as they reported it")
    db_option(gaps)
    gaps.add_argument("--station", default=None, help="only this station")
    gaps.add_argument("--json", action="store_true")
    gaps.set_defaults(run=cmd_catalog_gaps)
    qc = catalog.add_parser("qc", help="QC summary of a station: counts per flag and check, "
                            "coverage")
    db_option(qc)
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
    from obslink.agent.preflight import check_deployment
    from obslink.plugins.qc_limits import DEFAULT_LIMITS

    config, registry = _load_agent_config(args.config)
    check_deployment(config, registry)
    print(f"{args.config}: OK — station {config.station} (network {config.network}), "
          f"{len(config.sources)} source{'s' * (len(config.sources) != 1)}: " + ", ".join(
              f"{s.name} ({s.type}, {s.format})" for s in config.sources))
    checks = config.qc.checks if config.qc.checks is not None else sorted(registry.qc_checks)
    changed = sorted(e for e, limits in config.qc.limits.items()
                     if DEFAULT_LIMITS.get(e) != limits)
    print("QC: " + (", ".join(checks) if checks else "none at the edge (the collector checks)")
          + (f"; own limits for {', '.join(changed)}" if changed else "; default limits"))
    return 0


def cmd_agent_run(args) -> int:
    from obslink.agent.preflight import check_deployment
    from obslink.agent.runner import run_agent

    config, registry = _load_agent_config(args.config)
    check_deployment(config, registry)
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


def _broker_address(url: str) -> tuple[str, int, bool]:
    from obslink.mqtt_tcp import parse_broker_url

    try:
        return parse_broker_url(url)
    except ValueError as exc:
        raise ConfigError(f"--broker {exc}") from None


def cmd_collector_serve(args) -> int:
    import signal
    import threading

    from obslink.keys import load_or_create_decryption_key
    from obslink.server.catalog import open_catalog
    from obslink.server.collector import DECRYPTION_KEY_FILE, Collector
    from obslink.server.qc_report import parse_age

    host, port, tls = _broker_address(args.broker)
    if args.ca_file and not args.ca_file.is_file():
        raise ConfigError(f"--ca-file {args.ca_file} does not exist")
    catalog = open_catalog(args.db)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    grace = parse_age(args.key_grace, "--key-grace")
    decryption_key = load_or_create_decryption_key(
        args.decryption_key or args.db.with_name(DECRYPTION_KEY_FILE))
    Collector(catalog, host, port, args.group, args.network, args.client_id,
              key_grace_s=grace, decryption_key=decryption_key, tls=tls,
              ca_file=str(args.ca_file) if args.ca_file else None, username=args.username,
              password_file=args.password_file).run(stop)
    catalog.close()
    return 0


def cmd_collector_http(args) -> int:
    try:
        import uvicorn

        from obslink.server.http_api import create_app
    except ImportError as exc:  # an agent-only install (pip install obslink)
        raise ToolMissingError(f"`obslink collector http` needs the collector's extra, and "
                               f"{exc.name} is not installed: pip install 'obslink[server]'"
                               ) from None
    from obslink.keys import load_private_key, write_keypair
    from obslink.keys import load_or_create_decryption_key
    from obslink.server.collector import DECRYPTION_KEY_FILE

    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--listen {args.listen!r}: give HOST:PORT, e.g. 0.0.0.0:8080")
    _open_existing_catalog(args.db).close()
    key_path = args.collector_key or args.db.with_name("collector.key")
    if not key_path.exists():
        write_keypair(key_path, key_path.with_suffix(".pub"))
    encryption = load_or_create_decryption_key(args.db.with_name(DECRYPTION_KEY_FILE))
    app = create_app(args.db, args.broker_url, load_private_key(key_path).public_key(),
                     encryption.public_key())
    tls = {}
    if args.tls_dir:
        tls = {"ssl_certfile": str(args.tls_dir / "server.pem"),
               "ssl_keyfile": str(args.tls_dir / "server.key")}
        for path in tls.values():
            if not Path(path).is_file():
                raise ConfigError(f"--tls-dir: {path} does not exist; run `obslink collector "
                                  f"tls init --dir {args.tls_dir} --host HOST`")
    scheme = "https" if tls else "http"
    print(f"collector HTTP API on {scheme}://{host}:{port} (OpenAPI at /docs)", flush=True)
    uvicorn.run(app, host=host, port=int(port), log_level="warning", **tls)
    return 0


def cmd_broker_config(args) -> int:
    from obslink.server.broker_config import write_broker_config
    from obslink.server.catalog.broker_passwords import COLLECTOR_ACCOUNT

    _open_existing_catalog(args.db).close()
    written = write_broker_config(args.db, args.dir, args.tls_dir, args.port, args.address,
                                  args.user)
    print(f"wrote {written['config']} with {written['accounts']} accounts (TLS on port "
          f"{args.port}), its files owned by {written['user']}, the account the broker runs "
          f"as; start it with `mosquitto -c {written['config']}` (or send a running one "
          f"SIGHUP to reload); the collector logs in with --username {COLLECTOR_ACCOUNT} "
          f"--password-file {written['collector_password']}")
    return 0


def cmd_tls_init(args) -> int:
    from obslink.server.tls import init_tls

    paths = init_tls(args.dir, args.host, overwrite=args.force)
    print(f"wrote {paths['ca.pem']} (give it to every station: [uplink] ca_file, and to the "
          f"collector: --ca-file), {paths['server.pem']} and {paths['server.key']} for the "
          f"broker's TLS listener (certfile, keyfile), valid for {', '.join(args.host)}; "
          f"keep {paths['ca.key']} offline")
    return 0


def cmd_agent_rotate_key(args) -> int:
    from obslink.agent.rotate import rotate_key

    config, _registry = _load_agent_config(args.config)
    old, new = rotate_key(config, float(os.environ.get("OBSLINK_ROTATE_TIMEOUT", 30)))
    print(f"station {config.station} now signs with key {new} ({config.private_key}); the "
          f"old key {old} is kept as {config.private_key}.old and stays valid at the "
          f"collector for its grace period. A running agent switches within seconds.")
    return 0


def cmd_agent_enrol(args) -> int:
    import requests

    from obslink.keys import key_id, load_private_key, public_bytes, write_keypair, write_secret

    if not args.private.exists():
        write_keypair(args.private, args.private.with_suffix(".pub"))
        print(f"wrote a new key pair: {args.private} (mode 0600), "
              f"{args.private.with_suffix('.pub')}")
    public = load_private_key(args.private).public_key()
    url = args.collector.rstrip("/") + "/v1/enrol"
    try:
        reply = requests.post(url, json={"token": args.token,
                                         "public_key": public_bytes(public).hex()}, timeout=30,
                              verify=str(args.ca_file) if args.ca_file else True)
    except requests.exceptions.SSLError:
        raise TransportError(f"cannot reach the collector at {url}: its certificate is not "
                             "trusted; pass --ca-file with the network's ca.pem") from None
    except requests.exceptions.Timeout:
        raise TransportError(f"cannot reach the collector at {url}: no answer within 30 s; "
                             "check the address and the network") from None
    except requests.RequestException as exc:
        raise TransportError(f"cannot reach the collector at {url}: nothing answers there "
                             f"({type(exc).__name__}); check the address and that `obslink "
                             "collector http` runs") from None
    if reply.status_code != 200:
        try:
            detail = reply.json().get("detail")
        except ValueError:
            detail = reply.text[:200]
        raise TransportError(f"the collector refused the enrolment (HTTP "
                             f"{reply.status_code}): {detail}")
    answer = reply.json()
    answer["enrolled_at"] = format_utc(now_us(), fixed=True)
    password_file = args.private.with_name("broker.password")
    write_secret(password_file, answer.pop("broker_password") + "\n")
    answer["broker_password_file"] = str(password_file)
    args.save.write_text(json.dumps(answer, indent=2) + "\n")
    print(f"enrolled: key {key_id(public)} now belongs to station {answer['station']} "
          f"(network {answer['network']}); saved {args.save}\n"
          "in agent.toml:\n"
          + agent_config_snippet(answer, args.private, password_file, args.ca_file))
    if answer.get("broker_note"):
        print(f"note: {answer['broker_note']}")
    return 0


def agent_config_snippet(answer: dict, private: Path, password_file: Path,
                         ca_file: Path | None) -> str:
    """The [station] and [uplink] lines an enrolled gateway's agent.toml needs; paths are
    absolute, so the lines work wherever the config file lives."""
    lines = ["[station]", f'id = "{answer["station"]}"', f'network = "{answer["network"]}"',
             f'private_key = "{private.resolve()}"', "[uplink]",
             f'broker = "{answer["broker"]}"', f'username = "{answer["broker_username"]}"',
             f'password_file = "{password_file.resolve()}"']
    if answer["broker"].startswith("mqtts://"):
        lines += [f'ca_file = "{ca_file.resolve()}"'] if ca_file else [
            "# the system's CAs check the broker's certificate; if it is the network's own",
            '# (`obslink collector tls init`), copy its ca.pem here: ca_file = "ca.pem"']
    lines += ["# to seal every message to the collector (brokers you do not control):",
              f'# encrypt_to = "{answer.get("collector_encryption_key", "")}"']
    return "\n".join(f"  {line}" for line in lines)


def cmd_keys_list(args) -> int:
    keys = _from_catalog(args.db, lambda catalog: catalog.keys(args.station))
    if args.json:
        print(json.dumps(keys, indent=2))
        return 0
    if not keys:
        print("no keys" + (f" of station {args.station}" if args.station else ""))
    for key in keys:
        revoked = f", revoked {key['revoked_at']}" if key["revoked_at"] else ""
        print(f"{key['station']:<24} {key['key_id']}  {key['status']:<8} since "
              f"{key['created_at']}{revoked}")
    return 0


def cmd_keys_revoke(args) -> int:
    key = _from_catalog(args.db, lambda catalog: catalog.revoke_key(args.key_id))
    print(f"key {key['key_id']} of station {key['station']} revoked at {key['revoked_at']}; "
          f"running collectors refuse its next batch")
    return 0


def cmd_refusals(args) -> int:
    from obslink.server.qc_report import parse_since
    from obslink.server.verify import REFUSAL_REASONS

    since = parse_since(args.since) if args.since else None
    counts, recent = _from_catalog(
        args.db, lambda catalog: catalog.refusals(args.station, since, args.limit))
    if args.json:
        print(json.dumps({"counts": counts, "recent": recent}, indent=2))
        return 0
    if not counts:
        print("no refusals" + (f" for station {args.station}" if args.station else ""))
        return 0
    for reason, count in counts.items():
        print(f"{count:>8}  {reason:<16} {REFUSAL_REASONS.get(reason, '')}")
    print(f"\nnewest {len(recent)}:")
    for item in recent:
        print(f"{item['received_at']}  {item['station'] or '?'}  {item['reason']}: "
              f"{item['detail']}  (payload sha256 {item['payload_sha256'][:16]}…)")
    return 0


def cmd_catalog_stats(args) -> int:
    catalog = _open_existing_catalog(args.db)
    stats = catalog.stats()
    catalog.close()
    if args.json:
        print(json.dumps(stats))
    else:
        width = max(map(len, stats)) + 2
        for key, value in stats.items():
            print(f"{key:<{width}}{value}")
    return 0


def _open_existing_catalog(path: Path):
    from obslink.server.catalog import open_catalog

    if not path.exists():
        raise ConfigError(f"--db {path}: no catalog there; start `obslink collector serve "
                          f"--db {path}` or check the path")
    return open_catalog(path)


def _from_catalog(path: Path, query):
    """``query(catalog)`` on the existing catalog at ``path``, closed afterwards."""
    catalog = _open_existing_catalog(path)
    try:
        return query(catalog)
    finally:
        catalog.close()


def cmd_catalog_gaps(args) -> int:
    gaps = _from_catalog(args.db, lambda catalog: catalog.gaps(args.station))
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
