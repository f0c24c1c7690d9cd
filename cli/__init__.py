"""The ``obslink`` command: one module per command group (``parse``, ``plugins``, ``agent``,
``collector`` with ``stations``, ``catalog``, ``account``, ``audit``, ``demo``), what they share in
:mod:`obslink.cli.options`. Commands import what they need when they run, so a gateway's
``obslink agent …`` never loads the collector."""

from __future__ import annotations

import argparse
import os
import sys

from obslink import __version__
from obslink.cli import (accounts, agent, audit, catalog, collector, demo, monitor,
                         parse, plugins)
from obslink.errors import ConfigError, ObslinkError
from obslink.logs import LOG_FORMATS, configure_logging

COMMAND_GROUPS = (plugins, parse, agent, collector, catalog, monitor, accounts, audit,
                  demo)


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
    for group in COMMAND_GROUPS:
        group.add_commands(commands)
    return parser
