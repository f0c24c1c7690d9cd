"""Which alarms should be open now, by the rules (docs/monitoring.md, "Alarms"), and the
changes that make the catalog's open alarms match."""

from __future__ import annotations

from dataclasses import dataclass

from obslink.readings import format_utc
from obslink.server.monitoring import rules
from obslink.server.monitoring.measures import Counts
from obslink.server.monitoring.report import HOUR_US, NetworkState, hour_floor


@dataclass(frozen=True)
class Finding:
    station: str
    rule: str
    subject: str  # '' for the station as a whole
    detail: str
    value: float | None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.station, self.rule, self.subject)


def findings(catalog, now_us: int) -> list[Finding]:
    """Every alarm the rules call for at ``now_us``. Stations that never reported and
    retired stations raise none."""
    state = NetworkState.read(catalog, now_us)
    windows: dict[int, dict[str, tuple[int, Counts]]] = {}

    def window(station: str, hours: int) -> tuple[int, Counts]:
        """(expected, counts) over the last ``hours`` hours, from the start of the hour
        the window begins in (the counts are hourly)."""
        if hours not in windows:
            start = hour_floor(now_us - hours * HOUR_US)
            sums: dict[str, tuple[int, Counts]] = {}
            for row in catalog.monitor_counts(start, now_us + HOUR_US):
                sums.setdefault(row[0], (0, Counts()))[1].add(row[1:])
            for sid, streams in state.streams.items():
                expected = sum(state.expected(s, start, now_us + HOUR_US) for s in streams)
                sums[sid] = (expected, sums.get(sid, (0, Counts()))[1])
            windows[hours] = sums
        return windows[hours].get(station, (0, Counts()))

    refusal_windows: dict[int, dict[str, int]] = {}
    equipment: dict[str, dict] = {}  # element -> station -> (observed µs, value), when asked
    gap_windows: dict[int, dict[str, tuple[int, int]]] = {}
    found = []
    for sid, station in state.stations.items():
        if station["last_committed_us"] is None or state.retired_us(sid) is not None:
            continue

        def rule(name: str) -> dict | None:
            settings = rules.effective(state.rules, sid, name)
            return settings if settings["enabled"] else None

        def add(name: str, detail: str, value: float | None) -> None:
            found.append(Finding(sid, name, "", detail, value))

        if (settings := rule("silent")) and state.is_silent(sid):
            silent = state.silent_for(sid)
            add("silent", f"no data for {silent:.1f} reporting intervals of "
                f"{state.shortest_interval(sid)} s (last committed "
                f"{format_utc(station['last_committed_us'])}; the rule allows "
                f"{settings['intervals']})", silent)
        if settings := rule("completeness"):
            expected, counts = window(sid, settings["window_h"])
            if expected and counts.received / expected < settings["below"]:
                add("completeness", f"{counts.received} of {expected} expected readings "
                    f"({counts.received / expected:.1%}) in the last {settings['window_h']} "
                    f"h; the rule wants {settings['below']:.0%}", counts.received / expected)
        if settings := rule("latency"):
            _, counts = window(sid, settings["window_h"])
            p95 = counts.latency_quantile(0.95)
            if counts.received >= settings["min_readings"] and p95 is not None and \
                    p95 > settings["p95_above_s"]:
                add("latency", f"95 % of readings arrived within {p95:g} s (the bucket "
                    f"bound) in the last {settings['window_h']} h; the rule allows "
                    f"{settings['p95_above_s']} s", min(p95, 1e9))
        if settings := rule("qc_erroneous"):
            _, counts = window(sid, settings["window_h"])
            if counts.received >= settings["min_readings"] and \
                    counts.erroneous / counts.received > settings["share_above"]:
                share = counts.erroneous / counts.received
                add("qc_erroneous", f"{counts.erroneous} of {counts.received} readings "
                    f"({share:.1%}) flagged erroneous in the last {settings['window_h']} h; "
                    f"the rule allows {settings['share_above']:.1%}", share)
        if settings := rule("refusals"):
            hours = settings["window_h"]
            if hours not in refusal_windows:
                refusal_windows[hours] = catalog.refusal_counts(now_us - hours * HOUR_US)
            refused = refusal_windows[hours].get(sid, 0)
            if refused > settings["above"]:
                add("refusals", f"{refused} message(s) from the station refused in the last "
                    f"{hours} h (`obslink collector refusals --station {sid}` says why)",
                    refused)
        if settings := rule("clock"):
            synced, offset = station["clock_synced"], station["clock_offset_ms"]
            if settings["unsynchronised"] and synced == 0:
                add("clock", "the station's newest batch says its clock is not "
                    "synchronised", offset)
            elif offset is not None and abs(offset) > settings["offset_above_ms"]:
                add("clock", f"the station's clock is off by {offset:.0f} ms; the rule "
                    f"allows {settings['offset_above_ms']} ms", offset)
        if settings := rule("gaps"):
            hours = settings["window_h"]
            if hours not in gap_windows:
                gap_windows[hours] = catalog.gap_counts(now_us - hours * HOUR_US)
            if sid in gap_windows[hours]:
                reports, readings = gap_windows[hours][sid]
                add("gaps", f"the station reported {reports} gap(s): {readings} readings "
                    f"evicted from its outbox in the last {hours} h", readings)
        if settings := rule("equipment"):
            for element in ("equipment_alarm_count", "equipment_alarm_code"):
                if element not in equipment:
                    equipment[element] = catalog.newest_values(element)
            newest = equipment["equipment_alarm_count"].get(sid)
            if newest is not None and newest[1] is not None and newest[1] > settings["above"]:
                code = equipment["equipment_alarm_code"].get(sid)
                add("equipment", f"the equipment's status of {format_utc(newest[0])} reports "
                    f"{newest[1]:g} active alarm(s)" + (f", the first with code {code[1]:g}"
                                                          if code and code[1] else ""),
                    newest[1])
    return found


def changes(open_alarms: list[dict], wanted: list[Finding]
            ) -> tuple[list[tuple], list[int]]:
    """(alarms to raise, ids of alarms to clear) that make ``open_alarms`` match."""
    is_open = {(a["station"], a["rule"], a["subject"]) for a in open_alarms}
    wanted_keys = {finding.key for finding in wanted}
    raise_ = [(f.station, f.rule, f.subject, f.detail, f.value) for f in wanted
              if f.key not in is_open]
    clear = [a["id"] for a in open_alarms
             if (a["station"], a["rule"], a["subject"]) not in wanted_keys]
    return raise_, clear
