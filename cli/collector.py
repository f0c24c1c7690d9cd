"""``obslink collector …``: what a collector operator runs (the collector and its HTTP API,
the broker's configuration and certificates, keys, refusals; stations, tokens and
enrolments are in :mod:`obslink.cli.stations`)."""

from __future__ import annotations

from pathlib import Path

from obslink.cli import stations
from obslink.cli.options import (add_collector_key_option, catalog_file_beside,
                                 collector_signing_key, command, open_catalog_at, print_json,
                                 print_listing, with_catalog)
from obslink.errors import ConfigError, ToolMissingError


def add_commands(commands) -> None:
    collector = commands.add_parser("collector", help="the central collector").add_subparsers(
        title="collector commands", metavar="COMMAND")
    serve = command(collector, "serve", cmd_collector_serve, "verify, commit and acknowledge "
                    "batches", catalog=True)
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
    add_collector_key_option(serve, "which signs the log's tree heads", make=True)
    serve.add_argument("--tree-head-interval", default="60s",
                       help="how often the log's tree head is signed while batches arrive "
                       "(default 60s; e.g. 10s, 5m)")
    serve.add_argument("--watch-every", default="10s",
                       help="how often the alarm rules are evaluated (default 10s; 0 turns "
                       "alarms off for this worker; docs/monitoring.md)")
    serve.add_argument("--metrics-listen", default=None, metavar="HOST:PORT",
                       help="serve Prometheus metrics here (ingest counters and the "
                       "network's completeness; docs/monitoring.md)")
    serve.add_argument("--protocol", type=int, choices=(1, 2), default=2,
                       help="the highest data protocol announced to stations (default 2: "
                       "compact batches; both are always accepted; 1 while other workers "
                       "of the group do not take v2 yet; docs/protocol.md)")
    serve.add_argument("--product-store", type=Path, default=None, metavar="DIR",
                       help="where radar volumes and other large products are kept "
                       "(default: CATALOG.products beside the catalog; docs/products.md)")
    stations.add_commands(collector)
    http = command(collector, "http", cmd_collector_http, "the collector's HTTP API: "
                   "enrolment and the catalog (docs/api.md; OpenAPI at /docs)", catalog=True)
    http.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT to listen on")
    http.add_argument("--broker-url", required=True,
                      help="the broker URL enrolled stations are told to publish to")
    add_collector_key_option(http, "whose public key enrolment hands to stations",
                             make=True)
    http.add_argument("--decryption-key", type=Path, default=None,
                      help="the X25519 key stations seal messages to, whose public half "
                      "enrolment hands out (created if missing; default collector-x25519.key "
                      "beside the catalog)")
    http.add_argument("--tls-dir", type=Path, default=None,
                      help="serve HTTPS with server.pem and server.key from `collector tls "
                      "init` (gateways then pass --ca-file ca.pem)")
    http.add_argument("--product-store", type=Path, default=None, metavar="DIR",
                      help="where radar volumes and other large products are kept "
                      "(default: CATALOG.products beside the catalog; docs/products.md)")
    broker_config = command(collector, "broker-config", cmd_broker_config, "a closed Mosquitto "
                            "configuration: TLS, an account per station, an ACL keeping each "
                            "station to its own topics", catalog=True)
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
    tls = collector.add_parser("tls", help="certificates for the broker").add_subparsers(
        title="tls commands", metavar="COMMAND")
    tls_init = command(tls, "init", cmd_tls_init, "create a CA and the broker's certificate")
    tls_init.add_argument("--dir", type=Path, default=Path("tls"),
                          help="where to write ca.pem, ca.key, server.pem, server.key "
                          "(default ./tls)")
    tls_init.add_argument("--host", action="append", default=[],
                          help="a name or address stations use for the broker (repeat)")
    tls_init.add_argument("--force", action="store_true", help="replace existing files")
    keys = collector.add_parser("keys", help="stations' signing keys").add_subparsers(
        title="keys commands", metavar="COMMAND")
    keys_list = command(keys, "list", cmd_keys_list, "keys with their station and status",
                        catalog=True, json=True)
    keys_list.add_argument("--station", default=None, help="only this station")
    revoke = command(keys, "revoke", cmd_keys_revoke, "revoke a key: the collector refuses its "
                     "next batch (revoked-key)", catalog=True, audited=True)
    revoke.add_argument("key_id", help="key id as `keys list` shows it")
    refusals = command(collector, "refusals", cmd_refusals, "messages the collector refused, "
                       "counted per reason, newest first", catalog=True, json=True)
    refusals.add_argument("--station", default=None, help="only this station")
    refusals.add_argument("--since", default=None,
                          help="only refusals at or after this time: ISO 8601 UTC or an age "
                          "such as 24h, 7d, 90m")
    refusals.add_argument("--limit", type=int, default=20, help="newest refusals listed")


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
    decryption_path = args.decryption_key or catalog_file_beside(
        args.db, DECRYPTION_KEY_FILE, "--decryption-key")
    catalog = open_catalog(args.db)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    grace = parse_age(args.key_grace, "--key-grace")
    interval = parse_age(args.tree_head_interval, "--tree-head-interval")
    watch_every = parse_age(args.watch_every, "--watch-every") if args.watch_every != "0" \
        else None
    decryption_key = load_or_create_decryption_key(decryption_path)
    signing_key = collector_signing_key(args.db, args.collector_key)
    Collector(catalog, host, port, args.group, args.network, args.client_id,
              key_grace_s=grace, decryption_key=decryption_key, tls=tls,
              ca_file=str(args.ca_file) if args.ca_file else None, username=args.username,
              password_file=args.password_file, signing_key=signing_key,
              tree_head_interval=interval, watch_every=watch_every,
              metrics_listen=args.metrics_listen, product_store=args.product_store,
              protocol=args.protocol).run(stop)
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
    from obslink.keys import load_or_create_decryption_key
    from obslink.server.collector import DECRYPTION_KEY_FILE

    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--listen {args.listen!r}: give HOST:PORT, e.g. 0.0.0.0:8080")
    open_catalog_at(args.db).close()
    signing_key = collector_signing_key(args.db, args.collector_key)
    encryption = load_or_create_decryption_key(
        args.decryption_key or catalog_file_beside(args.db, DECRYPTION_KEY_FILE,
                                                   "--decryption-key"))
    app = create_app(args.db, args.broker_url, signing_key.public_key(),
                     encryption.public_key(), product_store=args.product_store)
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

    open_catalog_at(args.db).close()
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


def cmd_keys_list(args) -> int:
    keys = with_catalog(args.db, lambda catalog: catalog.keys(args.station))
    return print_listing(
        keys, args.json, "no keys" + (f" of station {args.station}" if args.station else ""),
        lambda key: f"{key['station']:<24} {key['key_id']}  {key['status']:<8} since "
                    f"{key['created_at']}"
                    + (f", revoked {key['revoked_at']}" if key["revoked_at"] else ""))


def cmd_keys_revoke(args) -> int:
    key = with_catalog(args.db, lambda catalog: catalog.revoke_key(args.key_id))
    print(f"key {key['key_id']} of station {key['station']} revoked at {key['revoked_at']}; "
          f"running collectors refuse its next batch")
    return 0


def cmd_refusals(args) -> int:
    from obslink.server.qc_report import parse_since
    from obslink.server.verify import REFUSAL_REASONS

    since = parse_since(args.since) if args.since else None
    counts, recent = with_catalog(
        args.db, lambda catalog: catalog.refusals(args.station, since, args.limit))
    if args.json:
        print_json({"counts": counts, "recent": recent})
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
