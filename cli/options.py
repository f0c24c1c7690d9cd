"""What several commands share: how a command is declared, the catalog option, opening the
catalog, printing JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

from obslink.errors import ConfigError


def command(group, name: str, run: Callable[[argparse.Namespace], int], help: str, *,
            catalog: bool = False, json: bool = False, audited: bool = False,
            **parser_options) -> argparse.ArgumentParser:
    """A sub-command of ``group`` that runs ``run(args)``; ``catalog`` gives it ``--db``,
    ``json`` a ``--json`` switch; ``audited`` (an administrative action on the catalog)
    appends what it did to the catalog's audit log."""
    parser = group.add_parser(name, help=help, **parser_options)
    if catalog:
        parser.add_argument("--db", required=True, type=catalog_location,
                            help="the catalog: a SQLite file, or a postgresql:// URL")
    if json:
        parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(run=_audited(run, parser.prog) if audited else run)
    return parser


# options that say how a command runs, not what it does
_NOT_AUDITED = {"run", "db", "json", "log_level", "log_format"}


def _audited(run: Callable[[argparse.Namespace], int], action: str):
    """``run``, then an audit row of what it did (docs/access.md): the operating-system
    user and host, the command and its options."""
    def audited_run(args: argparse.Namespace) -> int:
        import getpass
        import socket

        status = run(args) or 0
        detail = {key: value if isinstance(value, (int, float, bool, type(None))) else
                  str(value) for key, value in vars(args).items() if key not in _NOT_AUDITED}
        with_catalog(args.db, lambda catalog: catalog.append_audit({
            "account": f"cli:{getpass.getuser()}", "address": f"local:{socket.gethostname()}",
            "action": action, "status": status, "detail": detail}))
        return status
    return audited_run


def catalog_location(text: str) -> Path | str:
    """A SQLite file's path, or a URL naming a catalog backend, kept as written (a Path
    would turn ``postgresql://host/db`` into ``postgresql:/host/db``)."""
    from obslink.server.catalog.backends import scheme_of

    return text if scheme_of(text) else Path(text)


def catalog_file_beside(location: Path | str, name: str, option: str) -> Path:
    """A file kept next to a SQLite catalog (the collector's keys); a catalog URL has no
    "next to", so the file's own option must be given."""
    if not isinstance(location, Path):
        raise ConfigError(f"--db {location} is not a file: give {option} for {name}")
    return location.with_name(name)


def add_collector_key_option(parser, use: str, make: bool) -> None:
    """``--collector-key``: what the command uses the key for, and whether it makes one."""
    parser.add_argument("--collector-key", type=Path, default=None,
                        help=f"the collector's Ed25519 key, {use} (default collector.key "
                        "beside the catalog" + ("; created if missing)" if make
                                                 else ", if it exists)"))


def collector_signing_key(location: Path | str, given: Path | None, make: bool = True,
                          required: bool = False):
    """The collector's Ed25519 key (``given``, or collector.key beside a SQLite catalog):
    it signs enrolment answers and the log's tree heads. With ``make`` it is made with its
    .pub on first use; otherwise a missing key is None, or an error when ``required``."""
    from obslink.keys import load_private_key, write_keypair
    from obslink.server.collector import SIGNING_KEY_FILE

    if given is None and not isinstance(location, Path) and not (make or required):
        return None  # a catalog URL has no "beside": without --collector-key, no key
    path = given or catalog_file_beside(location, SIGNING_KEY_FILE, "--collector-key")
    if not path.exists():
        if not make:
            if required:
                raise ConfigError(f"{path} does not exist: give --collector-key, the key "
                                  "`collector serve` signs tree heads with")
            return None
        write_keypair(path, path.with_suffix(".pub"))
    return load_private_key(path)


def open_catalog_at(location: Path | str, create: bool = False):
    """The catalog at ``location``; unless ``create``, a SQLite file must exist already."""
    from obslink.server.catalog import open_catalog

    if not create and isinstance(location, Path) and not location.exists():
        raise ConfigError(f"--db {location}: no catalog there; start `obslink collector serve "
                          f"--db {location}` or check the path")
    return open_catalog(location)


def with_catalog(location: Path | str, work, create: bool = False):
    """``work(catalog)`` on the catalog at ``location``, closed afterwards."""
    catalog = open_catalog_at(location, create)
    try:
        return work(catalog)
    finally:
        catalog.close()


def print_json(value) -> None:
    print(json.dumps(value, indent=2))


def print_listing(items: list, as_json: bool, nothing: str, line: Callable[[dict], str]) -> int:
    """What a list command prints: JSON, or a line per item (``nothing`` when none)."""
    if as_json:
        print_json(items)
        return 0
    if not items:
        print(nothing)
    for item in items:
        print(line(item))
    return 0
