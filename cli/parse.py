"""``obslink parse``: decode a logger file as a field technician checks a config
(the work is in :mod:`obslink.cli.parse_file`)."""

from __future__ import annotations

import sys
from pathlib import Path

from obslink.cli.options import command
from obslink.errors import ConfigError


def add_commands(commands) -> None:
    parse = command(commands, "parse", cmd_parse, "decode a logger file and show its readings",
                    description="Decode FILE with a format adapter and print its readings; "
                    "bad records are reported with line and reason. With a product format "
                    "(cinrad, nexrad2) print the product's metadata, or why it is refused.",
                    epilog="exit status: 0 every record was read; 1 a non-empty file gave no "
                    "reading (the last line says why); 2 the command or the config is wrong; "
                    "3 readings were read and some records quarantined")
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


def parse_options(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--option {pair!r} must look like KEY=VALUE")
        options[key.strip()] = value
    return options


def _product_format(args, registry):
    """The product format (radar volume, tilt, chunk) --format names or auto recognises."""
    from obslink.plugins.products import sniff_product

    if args.config is not None or not args.format:
        return None
    if args.format in registry.product_formats:
        return registry.product_formats[args.format]
    if args.format == "auto":
        with open(args.file, "rb") as stream:
            matches = sniff_product(stream, registry.product_formats)
        if len(matches) == 1:
            print(f"{args.file}: looks like {matches[0].name} ({matches[0].summary})",
                  file=sys.stderr)
            return matches[0]
    return None


def cmd_parse(args) -> int:
    from obslink.cli.parse_file import parse_file, plan_from_arguments, plan_from_config
    from obslink.plugins.registry import load_registry

    if not args.file.is_file():
        raise ConfigError(f"{args.file}: no such file")
    registry = load_registry()
    product_format = _product_format(args, registry)
    if product_format is not None:
        from obslink.cli.parse_product import parse_product

        return parse_product(args.file, product_format, args.json)
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
