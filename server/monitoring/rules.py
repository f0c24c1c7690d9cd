"""Alarm rules: their defaults, and the settings operators change for the whole network
or one station (docs/monitoring.md, "Alarms")."""

from __future__ import annotations

from obslink.errors import ConfigError

#: rule -> its settings and their defaults; every rule also has ``enabled``
DEFAULTS: dict[str, dict] = {
    # no batch committed for this many of the station's (shortest) reporting intervals
    "silent": {"intervals": 2},
    # received / expected over the last window_h hours (whole hours and the current one)
    "completeness": {"below": 0.9, "window_h": 1},
    # observed → committed, 95th percentile, over the window, once min_readings arrived
    "latency": {"p95_above_s": 60, "window_h": 1, "min_readings": 10},
    # share of the readings QC flagged erroneous over the window
    "qc_erroneous": {"share_above": 0.05, "window_h": 1, "min_readings": 10},
    # messages from the station the collector refused over the window
    "refusals": {"above": 0, "window_h": 1},
    # the newest batch's clock: not synchronised, or off by more than the bound
    "clock": {"offset_above_ms": 2000, "unsynchronised": True},
    # the station reported readings its outbox evicted (gap reports) over the window
    "gaps": {"window_h": 24},
    # the equipment's newest status reports active alarms (element equipment_alarm_count)
    "equipment": {"above": 0},
}
DESCRIPTIONS = {
    "silent": "no data for N reporting intervals",
    "completeness": "received / expected below a share over a window",
    "latency": "observed → committed p95 above a bound over a window",
    "qc_erroneous": "share of readings QC flagged erroneous above a bound",
    "refusals": "messages from the station refused by the collector",
    "clock": "station clock not synchronised or its offset above a bound",
    "gaps": "the station's outbox evicted readings or products (reported gaps)",
    "equipment": "the equipment's newest status reports active alarms (a radar's "
                 "transmitter, receiver …)",
}


def effective(stored: dict[tuple[str, str], dict], station: str, rule: str) -> dict:
    """A rule's settings at a station: defaults, then the network's changes, then the
    station's."""
    settings = {"enabled": True, **DEFAULTS[rule]}
    settings.update(stored.get(("", rule), {}))
    settings.update(stored.get((station, rule), {}))
    return settings


def parse_changes(rule: str, pairs: list[str]) -> dict:
    """``key=value`` arguments into a rule's settings, checked against its defaults."""
    if rule not in DEFAULTS:
        raise ConfigError(f"no alarm rule {rule!r}; the rules are {', '.join(DEFAULTS)}")
    allowed = {"enabled": True, **DEFAULTS[rule]}
    changes = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or key not in allowed:
            raise ConfigError(f"{pair!r}: give key=value with a key of rule {rule!r}: "
                              f"{', '.join(f'{k} (default {v})' for k, v in allowed.items())}")
        changes[key] = _value(rule, key, text, allowed[key])
    return changes


def _value(rule: str, key: str, text: str, default):
    if isinstance(default, bool):
        if text.lower() not in ("true", "false", "yes", "no", "1", "0"):
            raise ConfigError(f"{rule}.{key}={text!r}: give true or false")
        return text.lower() in ("true", "yes", "1")
    try:
        value = type(default)(text)
    except ValueError:
        raise ConfigError(f"{rule}.{key}={text!r}: give a number like {default}") from None
    if value < 0:
        raise ConfigError(f"{rule}.{key}={text!r}: cannot be negative")
    return value
