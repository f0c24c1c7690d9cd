"""``obslink agent …``: what a gateway's operator runs (keys, enrolment, checking and
running the agent, its outbox)."""

from __future__ import annotations

import os
from pathlib import Path

from obslink.cli.options import command


def add_commands(commands) -> None:
    agent = commands.add_parser("agent", help="the station gateway agent").add_subparsers(
        title="agent commands", metavar="COMMAND")
    keygen = command(agent, "keygen", cmd_agent_keygen, "create the station's Ed25519 key pair")
    keygen.add_argument("--private", type=Path, default=Path("station.key"),
                        help="private key file to write (mode 0600; default station.key)")
    keygen.add_argument("--public", type=Path, default=None,
                        help="public key file (default: private key path with .pub)")
    keygen.add_argument("--force", action="store_true", help="overwrite existing files")
    enrol = command(agent, "enrol", cmd_agent_enrol, "bind this gateway's key to its station "
                    "at the collector, with the operator's one-time token")
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
    config_command(agent, "rotate-key", cmd_agent_rotate_key, "announce a new key signed by "
                   "the current one and switch to it once the collector confirms")
    config_command(agent, "check", cmd_agent_check, "validate an agent config without "
                   "running it")
    config_command(agent, "run", cmd_agent_run, "run the agent")
    config_command(agent, "recover", cmd_agent_recover,
                   "rebuild a damaged outbox from what can still be read",
                   description="Stop the agent first. Reads every readable batch, source "
                   "position, QC history, quarantined record and gap of the outbox into a new "
                   "outbox with the same identity, and moves the damaged file aside "
                   "(OUTBOX.damaged-TIME).")
    config_command(agent, "status", cmd_agent_status, "outbox depth, last ack, quarantined "
                   "records", json=True)


def config_command(group, name: str, run, help: str, **options):
    """A command about one station: its agent config is the only argument."""
    parser = command(group, name, run, help, **options)
    parser.add_argument("config", type=Path)
    return parser


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
              f"{s.name} ({s.type}, {s.format})" for s in config.sources)
          + "".join(f"; products {p.name} ({p.format}, {p.settings['path']})"
                    for p in config.products))
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


def cmd_agent_rotate_key(args) -> int:
    from obslink.agent.rotate import rotate_key

    config, _registry = _load_agent_config(args.config)
    old, new = rotate_key(config, float(os.environ.get("OBSLINK_ROTATE_TIMEOUT", 30)))
    print(f"station {config.station} now signs with key {new} ({config.private_key}); the "
          f"old key {old} is kept as {config.private_key}.old and stays valid at the "
          f"collector for its grace period. A running agent switches within seconds.")
    return 0


def cmd_agent_enrol(args) -> int:
    from obslink.agent.enrol import agent_config_snippet, enrol
    from obslink.keys import write_keypair

    if not args.private.exists():
        write_keypair(args.private, args.private.with_suffix(".pub"))
        print(f"wrote a new key pair: {args.private} (mode 0600), "
              f"{args.private.with_suffix('.pub')}")
    done = enrol(args.collector, args.token, args.private, args.ca_file, args.save)
    answer = done.answer
    print(f"enrolled: key {done.key_id} now belongs to station {answer['station']} "
          f"(network {answer['network']}); saved {args.save}\n"
          "in agent.toml:\n"
          + agent_config_snippet(answer, args.private, done.password_file, args.ca_file))
    if answer.get("broker_note"):
        print(f"note: {answer['broker_note']}")
    return 0
