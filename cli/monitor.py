"""``obslink monitor network | station | schedule`` and ``obslink alarms …``: completeness,
timeliness and availability, the expected schedules, and alarms with their rules,
webhooks and deliveries (docs/monitoring.md)."""

from __future__ import annotations

import getpass

from obslink.cli.options import command, print_json, print_listing, with_catalog


def add_commands(commands) -> None:
    monitor = commands.add_parser("monitor", help="completeness, timeliness and availability "
                                  "of the network (docs/monitoring.md)").add_subparsers(
        title="monitor commands", metavar="COMMAND")
    network = command(monitor, "network", cmd_network, "every station's measures and the "
                      "network's over a period", catalog=True, json=True)
    _period_options(network)
    station = command(monitor, "station", cmd_station, "one station's measures per element, "
                      "and with --history per hour (24 h) and per day (30 days)",
                      catalog=True, json=True)
    station.add_argument("station")
    _period_options(station)
    station.add_argument("--history", action="store_true")
    schedule = command(monitor, "schedule", cmd_schedule, "show or set how often a station's "
                       "element is expected", catalog=True, json=True, audited=True)
    schedule.add_argument("station", nargs="?", default=None)
    schedule.add_argument("--element", default=None,
                          help="the element (without it: the station's own interval)")
    schedule.add_argument("--interval", type=int, default=None, metavar="SECONDS")
    schedule.add_argument("--clear", action="store_true",
                          help="remove the element's schedule (the station's applies)")

    alarms = commands.add_parser("alarms", help="alarms raised by the collector's rules "
                                 "(docs/monitoring.md)").add_subparsers(
        title="alarms commands", metavar="COMMAND")
    listing = command(alarms, "list", cmd_alarms, "open alarms (--all: cleared ones too)",
                      catalog=True, json=True)
    listing.add_argument("--all", action="store_true")
    listing.add_argument("--station", default=None)
    listing.add_argument("--limit", type=int, default=200)
    ack = command(alarms, "ack", cmd_ack, "acknowledge an alarm", catalog=True, json=True,
                  audited=True)
    ack.add_argument("id", type=int)
    ack.add_argument("--by", default=None, help="who acknowledges (default: your user name)")
    rules = command(alarms, "rules", cmd_rules, "show the rules in force (at a station), or "
                    "change one: RULE key=value …", catalog=True, json=True, audited=True)
    rules.add_argument("rule", nargs="?", default=None)
    rules.add_argument("settings", nargs="*", metavar="key=value")
    rules.add_argument("--station", default=None,
                       help="change or show this station's rules (default: the network's)")
    rules.add_argument("--reset", action="store_true",
                       help="drop RULE's changes at the station (or network)")
    hooks = command(alarms, "webhooks", cmd_webhooks, "list webhooks, or --add/--remove URL: "
                    "each alarm raised or cleared is POSTed to every one", catalog=True,
                    json=True, audited=True)
    hooks.add_argument("--add", default=None, metavar="URL")
    hooks.add_argument("--remove", default=None, metavar="URL")
    deliveries = command(alarms, "deliveries", cmd_deliveries, "each alarm event's delivery "
                         "on MQTT and to each webhook: attempts, status, last error",
                         catalog=True, json=True)
    deliveries.add_argument("--alarm", type=int, default=None)


def _period_options(parser) -> None:
    parser.add_argument("--period", default="1h",
                        help="the last 90m, 6h, 24h, 7d … (whole hours, the current one "
                        "included; default 1h)")
    parser.add_argument("--day", default=None, metavar="YYYY-MM-DD",
                        help="a whole UTC day instead")


def _period(args) -> tuple[int, int, int]:
    from obslink.readings import now_us
    from obslink.server.monitoring.report import period_bounds

    now = now_us()
    start, end = period_bounds(args.period, args.day, now, ("--period", "--day"))
    return start, end, now


def _percent(value) -> str:
    return "-" if value is None else f"{value:.1%}"


def _seconds(value) -> str:
    return "-" if value is None else f"{value} s"


def _line(found: dict) -> str:
    name = found.get("station", found.get("element", ""))
    return (f"{name:<24} {found.get('status', ''):<14}"
            f"{found['received']:>8}/{found['expected']:<8}"
            f" complete {_percent(found['completeness']):>7}"
            f"  available {_percent(found['availability']):>7}"
            f"  QC {_percent(found['qc_coverage']):>7}"
            + (f"  ≤60 s {_percent(found['timeliness']['within_60s']):>7}"
               f"  p95 {_seconds(found['latency_p95_s'])}" if "timeliness" in found else ""))


def cmd_network(args) -> int:
    from obslink.server.monitoring.report import period_report

    start, end, now = _period(args)
    report = with_catalog(args.db, lambda catalog: period_report(catalog, start, end, now))
    if args.json:
        print_json(report)
        return 0
    network = report["network"]
    print(f"{report['start']} – {report['end']}: {network['stations']} stations, "
          + ", ".join(f"{count} {status}" for status, count in network["by_status"].items()))
    print(_line({"station": "network", **network}))
    for found in report["stations"]:
        print(_line(found))
    return 0


def cmd_station(args) -> int:
    from obslink.server.monitoring.report import period_report, station_history

    start, end, now = _period(args)

    def read(catalog):
        catalog.get(args.station)
        report = period_report(catalog, start, end, now, args.station, elements=True)
        history = station_history(catalog, args.station, now) if args.history else None
        return report, history
    report, history = with_catalog(args.db, read)
    found = report["stations"][0]
    if args.json:
        print_json({**found, "history": history} if history else found)
        return 0
    print(f"{report['start']} – {report['end']}, last committed "
          f"{found['last_committed_at'] or 'never'}")
    print(_line(found))
    for element in found["elements"]:
        print("  " + _line(element))
    if history:
        for name in ("hourly", "daily"):
            print(f"{name}:")
            for bucket in history[name]:
                print(f"  {bucket['start']}  {bucket['received']:>6}/{bucket['expected']:<6} "
                      f"{_percent(bucket['completeness']):>7}  p95 "
                      f"{_seconds(bucket['latency_p95_s'])}")
    return 0


def cmd_schedule(args) -> int:
    from obslink.errors import ConfigError

    if args.interval is not None and not 0 < args.interval <= 86_400:
        raise ConfigError(f"--interval {args.interval}: give 1 to 86400 seconds")

    def work(catalog):
        if args.station and (args.interval is not None or args.clear):
            if args.element is None:
                if args.clear:
                    raise ConfigError("--clear needs --element: the station's own interval is "
                                      "changed with --interval")
                catalog.update(args.station, interval_seconds=args.interval)
            else:
                catalog.set_schedule(args.station, args.element,
                                     None if args.clear else args.interval)
        stations = {s["id"]: s["interval_seconds"] for s in catalog.monitor_stations()
                    if args.station in (None, s["id"])}
        if args.station and args.station not in stations:
            catalog.get(args.station)
        default = int(catalog.catalog_settings().get("default_interval_s", 60))
        elements = catalog.schedules(args.station)
        return [{"station": sid, "element": None, "interval_s": interval or default,
                 "set": interval is not None} for sid, interval in stations.items()] + \
            [{"station": sid, "element": element, "interval_s": interval, "set": True}
             for (sid, element), interval in sorted(elements.items())]
    found = with_catalog(args.db, work)
    return print_listing(found, args.json, "no stations", lambda s: (
        f"{s['station']:<24} {s['element'] or '(station)':<24} every {s['interval_s']} s"
        + ("" if s["set"] else " (the catalog's default)")))


def _alarm_line(alarm: dict) -> str:
    from obslink.readings import format_utc

    state = "open" if alarm["cleared_us"] is None else \
        f"cleared {format_utc(alarm['cleared_us'])}"
    ack = "" if alarm["acknowledged_us"] is None else \
        f", acknowledged by {alarm['acknowledged_by']}"
    return (f"#{alarm['id']:<5} {alarm['station']:<20} {alarm['rule']:<13} raised "
            f"{format_utc(alarm['raised_us'])}, {state}{ack}: {alarm['detail']}")


def cmd_alarms(args) -> int:
    from obslink.server.monitoring.delivery import alarm_json

    found = with_catalog(args.db, lambda catalog: catalog.alarms(
        args.station, open_only=not args.all, limit=args.limit))
    return print_listing([alarm_json(alarm) for alarm in found], args.json,
                         "no open alarms" if not args.all else "no alarms", _alarm_line)


def cmd_ack(args) -> int:
    by = args.by or getpass.getuser()
    from obslink.server.monitoring.delivery import alarm_json

    found = with_catalog(args.db, lambda catalog: catalog.acknowledge_alarm(args.id, by))
    if args.json:
        print_json(alarm_json(found))
    else:
        print(_alarm_line(found))
    return 0


def cmd_rules(args) -> int:
    from obslink.errors import ConfigError
    from obslink.server.monitoring import rules

    station = args.station or ""

    def work(catalog):
        if args.rule is not None:
            if args.reset:
                if args.settings:
                    raise ConfigError("--reset takes no key=value settings")
                rules.parse_changes(args.rule, [])
                catalog.set_alarm_rule(station, args.rule, None)
            elif args.settings:
                stored = catalog.alarm_rules().get((station, args.rule), {})
                catalog.set_alarm_rule(station, args.rule, {
                    **stored, **rules.parse_changes(args.rule, args.settings)})
            else:
                rules.parse_changes(args.rule, [])
        stored = catalog.alarm_rules()
        return [{"rule": name, "station": station or None, "description":
                 rules.DESCRIPTIONS[name], "settings": rules.effective(stored, station, name),
                 "changed_here": stored.get((station, name), {})}
                for name in rules.DEFAULTS if args.rule in (None, name)]
    found = with_catalog(args.db, work)
    return print_listing(found, args.json, "", lambda r: (
        f"{r['rule']:<13} " + " ".join(f"{k}={v}" for k, v in r["settings"].items())
        + f"   ({r['description']})"))


def cmd_webhooks(args) -> int:
    def work(catalog):
        if args.add:
            catalog.add_webhook(args.add)
        if args.remove:
            catalog.remove_webhook(args.remove)
        return catalog.webhooks()
    found = with_catalog(args.db, work)
    return print_listing(found, args.json, "no webhooks",
                         lambda h: f"{h['url']}  (added {h['created_at']})")


def cmd_deliveries(args) -> int:
    from obslink.readings import format_utc

    found = with_catalog(args.db, lambda catalog: catalog.deliveries(args.alarm))
    return print_listing(found, args.json, "no deliveries", lambda d: (
        f"alarm #{d['alarm_id']} {d['event']:<8} {d['channel']:<40} {d['status']:<10} "
        f"{d['attempts']} attempt(s)"
        + (f", last {format_utc(d['last_attempt_us'])}" if d["last_attempt_us"] else "")
        + (f": {d['last_error']}" if d["last_error"] else "")))
