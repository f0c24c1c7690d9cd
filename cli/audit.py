"""``obslink audit …``: the audit log for auditors (docs/access.md, "Audit"): list rows,
verify the hash chain, outflow per account and dataset."""

from __future__ import annotations

import json
import sys

from obslink.cli.options import command, print_json, with_catalog
from obslink.errors import ConfigError


def add_commands(commands) -> None:
    audit = commands.add_parser("audit", help="the audit log: list, verify, outflow "
                                "(docs/access.md)").add_subparsers(
        title="audit commands", metavar="COMMAND")
    listing = command(audit, "list", cmd_list, "audit rows, oldest first", catalog=True,
                      json=True)
    _period_options(listing)
    listing.add_argument("--action", default=None, help="e.g. 'GET /v1/observations'")
    listing.add_argument("--limit", type=int, default=None)
    verify = command(audit, "verify", cmd_verify, "re-check the hash chain: an edited or "
                     "deleted row is reported; prints the head to keep", catalog=True,
                     json=True)
    verify.add_argument("--expect", metavar="SEQ:HASH", default=None,
                        help="a head printed earlier: fail if that row is gone or changed "
                        "(rows cut from the end)")
    outflow = command(audit, "outflow", cmd_outflow, "requests, rows and bytes released "
                      "per account and dataset", catalog=True, json=True)
    _period_options(outflow)


def _period_options(parser) -> None:
    parser.add_argument("--account", default=None)
    parser.add_argument("--since", default=None, help="24h, 7d … ago, or an ISO 8601 time")
    parser.add_argument("--until", default=None, help="an ISO 8601 time (default now)")


def _period(args) -> tuple[int | None, int | None]:
    from obslink.server.qc_report import parse_since

    return (None if args.since is None else parse_since(args.since),
            None if args.until is None else parse_since(args.until))


def cmd_list(args) -> int:
    from obslink.server.access.audit_chain import shown_row

    since, until = _period(args)

    def rows(catalog):
        for row in catalog.audit_rows(0, args.account, since, until, args.action,
                                      args.limit):
            row = shown_row(row)
            if args.json:
                print(json.dumps(row))
            else:
                print(f"{row['seq']}  {row['at']}  {row['account'] or '-'}  "
                      f"{row['address'] or '-'}  {row['action']}  {row['status']}  "
                      f"rows {row['rows']}  bytes {row['bytes']}  {row['target']}")
    with_catalog(args.db, rows)
    return 0


def cmd_verify(args) -> int:
    from obslink.server.access.audit_chain import check_chain

    expected = None
    if args.expect:
        seq, _, digest = args.expect.partition(":")
        if not seq.isdigit() or len(digest) != 64:
            raise ConfigError(f"--expect {args.expect!r}: give SEQ:HASH as `audit verify` "
                              "printed it")
        expected = (int(seq), digest)

    def check(catalog):
        found = check_chain(catalog.audit_rows())
        problems = [str(problem) for problem in found.problems]
        if expected:
            seen = next(iter(catalog.audit_rows(expected[0] - 1, limit=1)), None)
            if seen is None or seen["seq"] != expected[0] or seen["hash"] != expected[1]:
                problems.append(f"audit row {expected[0]}: the head kept earlier is gone or "
                                "changed (rows were cut from the end, or replaced)")
        return problems, found.rows, found.head
    problems, count, head = with_catalog(args.db, check)
    if args.json:
        print_json({"rows": count, "head": f"{count}:{head}", "problems": problems,
                    "intact": not problems})
    else:
        for problem in problems:
            print(problem, file=sys.stderr)
        state = "intact" if not problems else f"NOT intact ({len(problems)} problems)"
        print(f"audit log {state}: {count} rows; head {count}:{head} (keep it elsewhere; "
              "`--expect` checks it later)")
    return 1 if problems else 0


def cmd_outflow(args) -> int:
    from obslink.server.access.outflow import outflow

    since, until = _period(args)
    report = with_catalog(args.db, lambda catalog: outflow(
        catalog.audit_rows(0, args.account, since, until)))
    if args.json:
        print_json(report)
        return 0
    if not report:
        print("no data released in the period")
    for entry in report:
        print(f"{entry['account'] or '-'}  {entry['dataset']}  requests {entry['requests']}  "
              f"rows {entry['rows']}  bytes {entry['bytes']}")
    return 0
