"""``obslink account …``: accounts, their API tokens and the address blacklist
(docs/access.md). Each change is recorded in the catalog's audit log."""

from __future__ import annotations

from obslink.cli.options import command, print_json, print_listing, with_catalog
from obslink.readings import format_utc


def add_commands(commands) -> None:
    from obslink.server.access.roles import KINDS, ROLES, SCOPES, STATUSES
    from obslink.server.catalog.datasets import CLASSIFICATIONS

    account = commands.add_parser("account", help="accounts, API tokens, blacklist "
                                  "(docs/access.md)").add_subparsers(
        title="account commands", metavar="COMMAND")
    create = command(account, "create", cmd_create, "a personal or service account",
                     catalog=True, json=True, audited=True)
    create.add_argument("name", help="lower-case letters, digits, '.', '_', '-'")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--clearance", default="public", choices=CLASSIFICATIONS,
                        help="the highest classification it may see (default public)")
    create.add_argument("--kind", default="personal", choices=KINDS,
                        help="personal (a person; needs --real-name) or service (an "
                        "application system)")
    create.add_argument("--real-name", default="", help="the person who holds it")
    command(account, "list", cmd_list, "every account", catalog=True, json=True)
    show = command(account, "show", cmd_show, "an account and its tokens", catalog=True,
                   json=True)
    show.add_argument("name")
    update = command(account, "update", cmd_update, "change role, clearance or real name",
                     catalog=True, json=True, audited=True)
    update.add_argument("name")
    update.add_argument("--role", choices=ROLES)
    update.add_argument("--clearance", choices=CLASSIFICATIONS)
    update.add_argument("--real-name")
    for status, verb in (("suspended", "suspend"), ("active", "activate"),
                         ("revoked", "revoke")):
        change = command(account, verb, cmd_status, {
            "suspend": "refuse its requests until activated again",
            "activate": "accept a suspended account's requests again",
            "revoke": "close it for good: its tokens are revoked"}[verb],
            catalog=True, json=True, audited=True)
        change.add_argument("name")
        change.set_defaults(status=status)
    assert set(STATUSES) == {"suspended", "active", "revoked"}
    token = command(account, "token", cmd_token, "issue an API token (printed once)",
                    catalog=True, json=True, audited=True)
    token.add_argument("name")
    token.add_argument("--scope", action="append", default=[], choices=SCOPES,
                       dest="scopes", help="limit it to these scopes (repeat; default: all "
                       "its role has)")
    token.add_argument("--valid", default="90d", help="how long it works: 12h, 90d … or "
                       "'never' (default 90d)")
    token.add_argument("--note", default="", help="what it is for")
    revoke_token = command(account, "revoke-token", cmd_revoke_token, "revoke one token at "
                           "once", catalog=True, json=True, audited=True)
    revoke_token.add_argument("token_id", help="the id `account show` lists")
    blacklist = command(account, "blacklist", cmd_blacklist, "list the blacklist, or --add "
                        "/ --remove an address or network", catalog=True, json=True,
                        audited=True)
    blacklist.add_argument("--add", metavar="NETWORK", help="e.g. 192.0.2.7 or 192.0.2.0/24")
    blacklist.add_argument("--remove", metavar="NETWORK")
    blacklist.add_argument("--reason", default="")


def _account_line(account: dict) -> str:
    return (f"{account['name']}  {account['kind']}  {account['role']}  clearance "
            f"{account['clearance']}  {account['status']}  {account['real_name']}")


def _token_line(token: dict) -> str:
    expires = "never" if token["expires_us"] is None else format_utc(token["expires_us"],
                                                                      fixed=True)
    state = f"revoked {token['revoked_at']}" if token["revoked_at"] else f"expires {expires}"
    return f"  token {token['id']}  {token['scopes']}  {state}  {token['note']}"


def _print_account(account: dict, as_json: bool) -> int:
    if as_json:
        print_json(account)
        return 0
    print(_account_line(account))
    for token in account.get("tokens", []):
        print(_token_line(token))
    return 0


def cmd_create(args) -> int:
    found = with_catalog(args.db, lambda catalog: catalog.create_account(
        args.name, args.role, args.clearance, args.kind, args.real_name))
    _print_account(found, args.json)
    if not args.json:
        print(f"next: `obslink account token {args.name} --db {args.db}` issues its token")
    return 0


def cmd_list(args) -> int:
    return print_listing(with_catalog(args.db, lambda catalog: catalog.accounts()), args.json,
                         "no accounts yet: `obslink account create NAME --role …`",
                         _account_line)


def cmd_show(args) -> int:
    return _print_account(with_catalog(args.db, lambda catalog: catalog.account(args.name)),
                          args.json)


def cmd_update(args) -> int:
    return _print_account(with_catalog(args.db, lambda catalog: catalog.update_account(
        args.name, role=args.role, clearance=args.clearance, real_name=args.real_name)),
        args.json)


def cmd_status(args) -> int:
    return _print_account(with_catalog(args.db, lambda catalog: catalog.update_account(
        args.name, status=args.status)), args.json)


def cmd_token(args) -> int:
    from obslink.server.access.tokens import issue_token
    from obslink.server.qc_report import parse_age

    valid = None if args.valid == "never" else parse_age(args.valid, "--valid")
    record, token = with_catalog(args.db, lambda catalog: issue_token(
        catalog, args.name, tuple(args.scopes), valid, args.note))
    if args.json:
        print_json({**record, "token": token})
        return 0
    print(_token_line(record).strip())
    print(f"token (shown this once; send it as `Authorization: Bearer …`):\n{token}")
    return 0


def cmd_revoke_token(args) -> int:
    record = with_catalog(args.db, lambda catalog: catalog.revoke_token(args.token_id))
    if args.json:
        print_json(record)
    else:
        print(_token_line(record).strip())
    return 0


def cmd_blacklist(args) -> int:
    def change(catalog):
        if args.add:
            catalog.add_to_blacklist(args.add, args.reason)
        if args.remove:
            catalog.remove_from_blacklist(args.remove)
        return catalog.blacklist()
    return print_listing(with_catalog(args.db, change), args.json, "the blacklist is empty",
                         lambda entry: f"{entry['network']}  {entry['added_at']}  "
                                       f"{entry['reason']}")
