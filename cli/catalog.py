"""``obslink catalog …``: what the catalog holds (counts, reported gaps, QC); provenance
and verification are in :mod:`obslink.cli.provenance`."""

from __future__ import annotations

import json
from pathlib import Path

from obslink.cli import datasets, provenance
from obslink.cli.options import (catalog_location, command, open_catalog_at, print_listing,
                                 with_catalog)
from obslink.errors import ConfigError


def add_commands(commands) -> None:
    catalog = commands.add_parser("catalog", help="query the catalog").add_subparsers(
        title="catalog commands", metavar="COMMAND")
    command(catalog, "stats", cmd_catalog_stats, "counts of stations, batches, observations",
            catalog=True, json=True)
    gaps = command(catalog, "gaps", cmd_catalog_gaps, "data stations evicted from their outbox "
                   "(caps, disk full), as they reported it", catalog=True, json=True)
    gaps.add_argument("--station", default=None, help="only this station")
    qc = command(catalog, "qc", cmd_catalog_qc, "QC summary of a station: counts per flag and "
                 "check, coverage", catalog=True, json=True)
    qc.add_argument("--station", required=True, help="station id")
    qc.add_argument("--since", default=None,
                    help="only observations at or after this time: ISO 8601 UTC "
                    "(2026-11-22, 2026-11-22T06:00Z) or an age such as 24h, 7d, 90m")
    copy = command(catalog, "copy", cmd_catalog_copy, "move a whole catalog into a new, "
                   "empty one (a SQLite file into PostgreSQL), checked row for row and by "
                   "its log's tree head (docs/scaling.md)", json=True)
    copy.add_argument("source", type=catalog_location,
                      help="the catalog to copy: a SQLite file or a postgresql:// URL")
    copy.add_argument("target", type=catalog_location,
                      help="the new catalog: a postgresql:// URL (its database must exist) "
                      "or a SQLite file")
    retire = command(catalog, "retire", cmd_catalog_retire, "move old months of "
                     "observations out of a PostgreSQL catalog into archive files; their "
                     "batches, log and provenance stay (docs/scaling.md, \"Retention\")",
                     catalog=True, json=True, audited=True)
    retire.add_argument("--before", required=True, metavar="YYYY-MM",
                        help="retire every month of observations before this one")
    retire.add_argument("--archive", required=True, type=Path, metavar="DIR",
                        help="where each month's file goes (gzip'd CSV with a header)")
    provenance.add_commands(catalog)
    datasets.add_commands(catalog)


def cmd_catalog_stats(args) -> int:
    stats = with_catalog(args.db, lambda catalog: catalog.stats())
    if args.json:
        print(json.dumps(stats))
    else:
        width = max(map(len, stats)) + 2
        for key, value in stats.items():
            print(f"{key:<{width}}{value}")
    return 0


def cmd_catalog_retire(args) -> int:
    import sys

    from obslink.server.catalog.postgres_retention import parse_month

    before = parse_month(args.before)

    def retire(catalog):
        if not hasattr(catalog, "retire_before"):
            raise ConfigError(
                f"--db {args.db}: a SQLite catalog keeps its observations in one table and "
                "cannot retire months; move it to PostgreSQL first (`obslink catalog copy "
                f"{args.db} postgresql://…`), whose observations are partitioned by month")
        return catalog.retire_before(before, args.archive,
                                     lambda text: print(text, file=sys.stderr, flush=True))
    retired = with_catalog(args.db, retire)
    if args.json:
        print(json.dumps(retired))
    else:
        for month in retired:
            print(f"{month['month']}: {month['rows']:,} observations retired into "
                  f"{month['archive']} (SHA-256 {month['sha256']})")
    return 0


def cmd_catalog_copy(args) -> int:
    import sys

    from obslink.server.catalog.backends import shown_url
    from obslink.server.catalog.copy import copy_catalog

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    source = open_catalog_at(args.source)
    try:
        target = open_catalog_at(args.target, create=True)
        try:
            say(f"copying {shown_url(str(args.source))} into {shown_url(str(args.target))} …")
            report = copy_catalog(source, target, say)
        finally:
            target.close()
    finally:
        source.close()
    if args.json:
        print(json.dumps({"rows": report.rows, "tree_size": report.tree_size,
                          "root": report.root.hex(), "seconds": round(report.seconds, 1)}))
    else:
        print(f"copied {sum(report.rows.values()):,} rows in {report.seconds:.1f} s; every "
              f"table's count and the log's tree head ({report.tree_size} leaves, root "
              f"{report.root.hex()}) equal in both catalogs")
    return 0


def cmd_catalog_gaps(args) -> int:
    gaps = with_catalog(args.db, lambda catalog: catalog.gaps(args.station))
    return print_listing(
        gaps, args.json, "no gaps reported" + (f" by {args.station}" if args.station else ""),
        lambda gap: f"{gap['station']}: {gap['first_observed']} .. {gap['last_observed']}: "
                    f"{gap['readings']} readings in {gap['batches']} batches evicted "
                    f"({gap['reason']}) at {gap['evicted_at']}")


def cmd_catalog_qc(args) -> int:
    from obslink.server.qc_report import parse_since, print_report, qc_report

    since = parse_since(args.since) if args.since else None
    report = with_catalog(args.db, lambda catalog: qc_report(catalog, args.station, since))
    print_report(report, as_json=args.json)
    return 0
