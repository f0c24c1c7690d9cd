"""``obslink catalog qc``: what QC made of a station's observations, and its coverage."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

from obslink.errors import ConfigError
from obslink.readings import (QC_FLAG_NAMES, QC_NOT_CHECKED, format_utc, now_us,
                              utc_us_from_datetime)
from obslink.server.catalog import Catalog

_AGE_RE = re.compile(r"^(\d+)([smhd])$")
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_age(text: str, option: str) -> int:
    """``90m``, ``24h``, ``7d`` (or ``30s``) as seconds."""
    age = _AGE_RE.match(text.strip())
    if not age or not int(age.group(1)):
        raise ConfigError(f"{option} {text!r}: give a duration like 90m, 24h or 7d")
    return int(age.group(1)) * _AGE_UNITS[age.group(2)]


def parse_since(text: str, now: int | None = None) -> int:
    """``24h``/``7d``/``90m`` ago, or an ISO 8601 time (UTC unless it says otherwise)."""
    age = _AGE_RE.match(text.strip())
    if age:
        return (now if now is not None else now_us()) - \
            int(age.group(1)) * _AGE_UNITS[age.group(2)] * 1_000_000
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--since {text!r}: give an ISO 8601 time like 2026-11-22T06:00Z "
                          "or an age like 24h, 7d, 90m") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return utc_us_from_datetime(moment)


def qc_report(catalog: Catalog, station: str, since: int | None) -> dict:
    counts = catalog.qc_counts(station, since)
    total = sum(counts.flags.values())
    if not total and not catalog.station_keys(station):
        raise ConfigError(f"--station {station}: no such station in the catalog")
    checked = total - counts.flags.get(QC_NOT_CHECKED, 0)
    return {
        "station": station,
        "since": format_utc(since) if since is not None else None,
        "observations": total,
        "coverage_percent": round(100 * checked / total, 3) if total else None,
        "flags": {QC_FLAG_NAMES.get(flag, str(flag)): count
                  for flag, count in sorted(counts.flags.items())},
        "checks": {name: {"ran": ran, "flagged": flagged}
                   for name, (ran, flagged) in sorted(counts.checks.items())},
        "qc_ran_at": counts.origins,
    }


def print_report(report: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, indent=2))
        return
    since = f" since {report['since']}" if report["since"] else ""
    print(f"station {report['station']}{since}: {report['observations']} observations")
    if not report["observations"]:
        return
    print(f"QC coverage {report['coverage_percent']:.3f} % (observations with a flag other "
          "than 'not checked')")
    print("flags:")
    for name, count in report["flags"].items():
        share = 100 * count / report["observations"]
        print(f"    {name:<12} {count:>10}  {share:6.2f} %")
    print("checks:             ran    flagged")
    for name, numbers in report["checks"].items():
        print(f"    {name:<12} {numbers['ran']:>10} {numbers['flagged']:>10}")
    print("batches checked at: " + ", ".join(f"{where} {count}" for where, count in
                                              sorted(report["qc_ran_at"].items())))
