"""``obslink collector station …``, ``token …`` and ``enrolments``: an operator's records of
stations (the catalog's administration methods do the work)."""

from __future__ import annotations

from pathlib import Path

from obslink.cli.options import command, print_json, print_listing, with_catalog
from obslink.errors import ConfigError, ObslinkError
from obslink.readings import format_utc


def add_commands(collector) -> None:
    """The sub-commands under ``collector``."""
    station = collector.add_parser("station", help="stations: register, list, show, "
                                   "update, retire").add_subparsers(
        title="station commands", metavar="COMMAND")
    add = command(station, "add", cmd_station_add, "register a new station and its public key "
                  "(or an enrolment token)", catalog=True, audited=True)
    add.add_argument("id", help="station id, e.g. WIGOS id 0-20000-0-54511")
    add.add_argument("--public-key", type=Path, help="the station's .pub file (or --enrol)")
    add.add_argument("--enrol", metavar="VALID_FOR", nargs="?", const="24h", default=None,
                     help="issue a one-time enrolment token instead of taking a key file, "
                     "valid for VALID_FOR (default 24h; e.g. 90m, 7d)")
    _record_options(add, network_default="default")
    listing = command(station, "list", cmd_station_list, "the stations, one a line",
                      catalog=True, json=True)
    listing.add_argument("--all", action="store_true", help="retired stations too")
    show = command(station, "show", cmd_station_show, "a station's record, keys, tokens, "
                   "broker account and enrolment attempts", catalog=True, json=True)
    show.add_argument("id")
    update = command(station, "update", cmd_station_update, "change the fields given (the "
                     "others stay), or add a key", catalog=True, audited=True)
    update.add_argument("id")
    update.add_argument("--public-key", type=Path, help="add this key (a .pub file)")
    _record_options(update, network_default=None)
    retire = command(station, "retire", cmd_station_retire, "the station reports no more: its "
                     "keys are revoked, its token and broker account withdrawn; its data and "
                     "identifiers stay", catalog=True, audited=True)
    retire.add_argument("id")
    credentials = command(station, "credentials", cmd_station_credentials, "a new broker "
                          "password for a station (a leaked one); its id is the user name",
                          catalog=True, audited=True)
    credentials.add_argument("id", help="station id")
    credentials.add_argument("--out", type=Path, default=None,
                             help="write the password to this file (mode 0600) instead of "
                             "printing it")

    token = collector.add_parser("token", help="enrolment tokens: issue, list, revoke"
                                 ).add_subparsers(title="token commands", metavar="COMMAND")
    issue = command(token, "issue", cmd_token_issue, "a one-time enrolment token for a "
                    "registered station (its earlier unused token stops working)", catalog=True,
                    audited=True)
    issue.add_argument("id", help="station id")
    issue.add_argument("--valid", default="24h", help="how long it works (default 24h; "
                       "e.g. 90m, 7d)")
    tokens = command(token, "list", cmd_token_list, "tokens with their status (live, used, "
                     "expired, revoked)", catalog=True, json=True)
    tokens.add_argument("--station", default=None)
    withdraw = command(token, "revoke", cmd_token_revoke, "withdraw a station's live token",
                       catalog=True, audited=True)
    withdraw.add_argument("id", help="station id")

    attempts = command(collector, "enrolments", cmd_enrolments, "enrolment attempts, granted "
                       "and refused, newest first", catalog=True, json=True)
    attempts.add_argument("--station", default=None)
    attempts.add_argument("--limit", type=int, default=50)


def _record_options(parser, network_default) -> None:
    parser.add_argument("--name")
    parser.add_argument("--lat", type=float, help="latitude, degrees north")
    parser.add_argument("--lon", type=float, help="longitude, degrees east")
    parser.add_argument("--interval", type=int, help="expected reporting interval, seconds")
    parser.add_argument("--network", default=network_default)


def _public_key(path: Path | None):
    from obslink.keys import key_id, load_public_key, public_bytes

    if path is None:
        return None, None
    key = load_public_key(path)
    return public_bytes(key), key_id(key)


def cmd_station_add(args) -> int:
    from obslink import wire
    from obslink.server.catalog import Station
    from obslink.server.qc_report import parse_age

    try:
        wire.check_station_id(args.id)
    except ObslinkError as exc:
        raise ConfigError(str(exc)) from None
    if (args.public_key is None) == (args.enrol is None):
        raise ConfigError("give the station's key with --public-key FILE, or --enrol to issue "
                          "a one-time token the gateway enrols with (not both)")
    raw, kid = _public_key(args.public_key)
    valid = parse_age(args.enrol, "--enrol") if args.enrol else None

    def register(catalog) -> tuple:
        catalog.register(Station(args.id, args.network, args.name, args.lat, args.lon,
                                 args.interval), raw, kid)
        token = catalog.issue_token(args.id, valid) if valid else None
        return token, catalog.closed_broker()

    token, closed = with_catalog(args.db, register, create=True)
    if token is None:
        print(f"station {args.id} registered with key {kid}")
    else:
        print(f"station {args.id} registered; enrolment token (valid until "
              f"{format_utc(token[1], fixed=True)}, works once):\n  {token[0]}\n"
              f"on the gateway: obslink agent enrol --collector URL --token {token[0]}")
    if closed:
        print(f"its broker account {args.id} is new: run `obslink collector broker-config` "
              "and reload the broker (SIGHUP) before the station connects")
    return 0


def cmd_station_list(args) -> int:
    stations = with_catalog(args.db, lambda catalog: catalog.stations(args.all))
    return print_listing(stations, args.json, "no stations" + (
        "" if args.all else " (--all lists retired ones too)"), _station_line)


def _station_line(s: dict) -> str:
    where = "" if s["latitude"] is None else f" at {s['latitude']}, {s['longitude']}"
    every = "" if s["interval_seconds"] is None else f", every {s['interval_seconds']} s"
    retired = f", retired {s['retired_at']}" if s["retired_at"] else ""
    return f"{s['id']:<24} {s['network']:<12} {s['name'] or ''}{where}{every}{retired}"


def cmd_station_show(args) -> int:
    shown = with_catalog(args.db, lambda catalog: catalog.show(args.id))
    if args.json:
        print_json(shown)
        return 0
    print(f"station {shown['id']} ({shown['status']}), network {shown['network']}, "
          f"registered {shown['created_at']}"
          + (f", retired {shown['retired_at']}" if shown["retired_at"] else ""))
    for field in ("name", "latitude", "longitude", "interval_seconds"):
        print(f"  {field}: {'' if shown[field] is None else shown[field]}")
    print(f"  batches in the catalog: {shown['batches']}, last committed "
          f"{shown['last_committed_at'] or 'never'}")
    print(f"  keys: {len(shown['keys'])}")
    for key in shown["keys"]:
        print(f"    {key['key_id']} {key['status']} since {key['created_at']}"
              + (f", revoked {key['revoked_at']}" if key["revoked_at"] else ""))
    print(f"  enrolment tokens: {len(shown['tokens'])}")
    for token in shown["tokens"]:
        print(f"    {token['token_id']} {token['status']}, made {token['created_at']}, "
              f"expires {token['expires_at']}")
    account = shown["broker_account"]
    print("  broker account: " + ("none" if account is None else
                                  f"{account['username']} (generation {account['generation']},"
                                  f" {'in' if account['broker_knows_it'] else 'not yet in'} "
                                  "the broker's configuration)"))
    print(f"  enrolment attempts (newest {len(shown['enrolment_attempts'])}):")
    for attempt in shown["enrolment_attempts"]:
        print(f"    {attempt['at']} {attempt['outcome']} from {attempt['client'] or '?'}: "
              f"{attempt['detail']}")
    return 0


def cmd_station_update(args) -> int:
    raw, kid = _public_key(args.public_key)
    changed = with_catalog(args.db, lambda catalog: catalog.update(
        args.id, raw, kid, name=args.name, latitude=args.lat, longitude=args.lon,
        interval_seconds=args.interval, network=args.network))
    print(f"station {args.id} updated: name {changed['name']!r}, position "
          f"{changed['latitude']}, {changed['longitude']}, interval "
          f"{changed['interval_seconds']} s, network {changed['network']}"
          + (f"; key {kid} added" if kid else ""))
    return 0


def cmd_station_retire(args) -> int:
    retired = with_catalog(args.db, lambda catalog: catalog.retire(args.id))
    print(f"station {args.id} retired at {retired['retired_at']}: its keys are revoked, its "
          "token and broker account withdrawn (run `obslink collector broker-config` and "
          "reload the broker); its data and identifiers stay in the catalog")
    return 0


def cmd_station_credentials(args) -> int:
    from obslink.keys import write_secret

    account = with_catalog(args.db, lambda catalog: catalog.new_broker_password(args.id))
    if args.out:
        write_secret(args.out, account.password + "\n")
        where = f"written to {args.out}"
    else:
        where = f"password: {account.password}"
    print(f"broker account {args.id}: {where}; run `obslink collector broker-config` and "
          f"reload the broker, and set [uplink] username = \"{args.id}\", password_file on "
          "the gateway (the old password stops working at the reload)")
    return 0


def cmd_token_issue(args) -> int:
    from obslink.server.qc_report import parse_age

    valid = parse_age(args.valid, "--valid")
    token, expires = with_catalog(args.db, lambda catalog: catalog.issue_token(args.id, valid))
    print(f"enrolment token for station {args.id} (valid until "
          f"{format_utc(expires, fixed=True)}, works once; any earlier unused token of the "
          f"station no longer works):\n  {token}\n"
          f"on the gateway: obslink agent enrol --collector URL --token {token}")
    return 0


def cmd_token_list(args) -> int:
    tokens = with_catalog(args.db, lambda catalog: catalog.tokens(args.station))
    return print_listing(
        tokens, args.json,
        "no enrolment tokens" + (f" of {args.station}" if args.station else ""),
        lambda t: f"{t['token_id']}  {t['station']:<24} {t['status']:<8} made "
                  f"{t['created_at']}, expires {t['expires_at']}"
                  + (f", used by key {t['key_id']}" if t["key_id"] else ""))


def cmd_token_revoke(args) -> int:
    count = with_catalog(args.db, lambda catalog: catalog.revoke_tokens(args.id))
    print(f"station {args.id}: " + ("its live enrolment token no longer works" if count else
                                    "no live enrolment token to withdraw"))
    return 0


def cmd_enrolments(args) -> int:
    attempts = with_catalog(args.db, lambda catalog: catalog.enrolment_attempts(
        args.station, args.limit))
    return print_listing(
        attempts, args.json,
        "no enrolment attempts" + (f" for {args.station}" if args.station else ""),
        lambda a: f"{a['at']}  {a['outcome']:<8} {a['station'] or '?':<24} key "
                  f"{a['key_id'] or '?'} from {a['client'] or '?'}: {a['detail']}")
