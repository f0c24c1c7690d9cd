"""The dashboard's HTML (docs/monitoring.md, "Dashboard"): the network at a glance, open
alarms, and per station its last 24 hours and 30 days as bar charts. Server-side SVG and
inline CSS, no script and nothing fetched from elsewhere: a centre on a closed network
sees the same page."""

from __future__ import annotations

from html import escape

from obslink.readings import format_utc
from obslink.server.monitoring.measures import AVAILABILITY_TARGET

REFRESH_S = 30
COLOURS = {"complete": "#2e9d4f", "below": "#e8a317", "not-reporting": "#333333"}
LABELS = {"complete": "complete", "below": "below expectation",
          "not-reporting": "not reporting"}
STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; margin: 0 0 .3em; } h2 { font-size: 1.1em; margin: 1.2em 0 .4em; }
.summary span { margin-right: 1.2em; }
.tiles { display: flex; flex-wrap: wrap; gap: 6px; }
.tile { display: block; width: 9.5em; padding: .4em .5em; border-radius: 4px; color: #fff;
        text-decoration: none; font-size: 12px; }
.tile b { display: block; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.legend span { display: inline-block; margin-right: 1em; }
.legend i { display: inline-block; width: .9em; height: .9em; margin-right: .3em;
            vertical-align: middle; border-radius: 2px; }
table { border-collapse: collapse; } td, th { padding: .2em .6em; text-align: left;
        border-bottom: 1px solid #ddd; }
svg text { font: 10px system-ui, sans-serif; fill: #555; }
"""


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="refresh" content="{REFRESH_S}">'
            f'<link rel="icon" href="data:,"><title>{escape(title)}</title>'
            f"<style>{STYLE}</style></head><body>{body}</body></html>\n")


def _percent(value) -> str:
    return "–" if value is None else f"{value:.1%}"


def _legend() -> str:
    return '<p class="legend">' + "".join(
        f'<span><i style="background:{COLOURS[s]}"></i>{LABELS[s]}</span>'
        for s in COLOURS) + f" (availability target {AVAILABILITY_TARGET:.0%})</p>"


def network_page(report: dict, alarms: list[dict]) -> str:
    network = report["network"]
    counts = network["by_status"]
    summary = (
        f'<p class="summary"><span>{network["stations"]} stations</span>'
        + "".join(f'<span>{counts[s]} {LABELS[s]}</span>' for s in COLOURS)
        + f'<span>completeness {_percent(network["completeness"])}</span>'
        f'<span>availability {_percent(network["availability"])}</span>'
        f'<span>within 60 s {_percent(network["timeliness"]["within_60s"])}</span>'
        f'<span>QC coverage {_percent(network["qc_coverage"])}</span></p>')
    tiles = "".join(
        f'<a class="tile status-{s["status"]}" data-station="{escape(s["station"])}" '
        f'data-status="{s["status"]}" style="background:{COLOURS[s["status"]]}" '
        f'href="/dashboard/stations/{escape(s["station"])}" title="{LABELS[s["status"]]}">'
        f'<b>{escape(s["station"])}</b>{escape(s["name"] or "")}<br>'
        f'{_percent(s["completeness"])} · last {escape(_short(s["last_committed_at"]))}</a>'
        for s in report["stations"] if not s["retired"])
    return _page("obslink: the network", (
        f"<h1>The network</h1><p>{escape(report['start'])} – {escape(report['now'])} "
        f"(the last hour, from the start of the hour it began in; refreshed every "
        f"{REFRESH_S} s)</p>{summary}{_legend()}<div class=\"tiles\">{tiles or 'no stations'}"
        f"</div><h2>Open alarms</h2>{_alarm_table(alarms)}"))


def _short(text: str | None) -> str:
    return "never" if text is None else text[:16].replace("T", " ")


def _alarm_table(alarms: list[dict]) -> str:
    if not alarms:
        return '<p id="no-alarms">none</p>'
    rows = "".join(
        f'<tr class="alarm" data-rule="{escape(a["rule"])}"><td>#{a["id"]}</td>'
        f'<td><a href="/dashboard/stations/{escape(a["station"])}">{escape(a["station"])}'
        f'</a></td><td>{escape(a["rule"])}</td><td>{format_utc(a["raised_us"])[:19]}</td>'
        f'<td>{_acknowledged(a)}</td><td>{escape(a["detail"])}</td></tr>' for a in alarms)
    return (f'<table id="alarms"><tr><th>alarm</th><th>station</th><th>rule</th>'
            f"<th>raised (UTC)</th><th></th><th>detail</th></tr>{rows}</table>")


def _acknowledged(alarm: dict) -> str:
    if alarm["acknowledged_us"] is None:
        return ""
    return f"acknowledged by {escape(alarm['acknowledged_by'] or '')}"


def _element_name(element: dict) -> str:
    period = element["period_s"]
    return escape(element["element"]) + ("" if period is None else f" ({period} s)")


def station_page(report: dict, history: dict, alarms: list[dict]) -> str:
    found = report["stations"][0]
    station = found["station"]
    rows = "".join(
        f'<tr><td>{_element_name(e)}</td><td>every {e["interval_s"]} s</td>'
        f'<td>{e["received"]}/{e["expected"]}</td>'
        f'<td>{_percent(e["completeness"])}</td><td>{_percent(e["availability"])}</td>'
        f'<td>{_percent(e["qc_coverage"])}</td><td>{_percent(e["erroneous_share"])}</td>'
        f"</tr>" for e in found["elements"])
    charts = "".join(
        f"<h2>{title}</h2>" + _bars(history[key], field, scale, label)
        for title, key, field, scale, label in (
            ("Completeness, last 24 hours", "hourly", "completeness", 1.0, "%"),
            ("Latency p95 (observed → committed), last 24 hours", "hourly", "latency_p95_s",
             None, "s"),
            ("Completeness, last 30 days", "daily", "completeness", 1.0, "%"),
            ("Latency p95, last 30 days", "daily", "latency_p95_s", None, "s")))
    return _page(f"obslink: {station}", (
        f'<p><a href="/dashboard">← the network</a></p><h1 data-status="{found["status"]}">'
        f'{escape(" ".join(filter(None, (station, found["name"]))))}: '
        f'{LABELS[found["status"]]}</h1>'
        f'<p>last committed {escape(found["last_committed_at"] or "never")}; the last hour: '
        f'{found["received"]} of {found["expected"]} expected readings, '
        f'{_percent(found["timeliness"]["within_60s"])} within 60 s, 95 % within '
        f'{found["latency_p95_s"] or "–"} s</p>'
        f"<table><tr><th>element</th><th>schedule</th><th>received</th><th>complete</th>"
        f"<th>available</th><th>QC coverage</th><th>erroneous</th></tr>{rows}</table>"
        f"{charts}<h2>Open alarms</h2>{_alarm_table(alarms)}"))


def _bars(buckets: list[dict], field: str, scale: float | None, unit: str) -> str:
    """A bar per bucket; the value and the bucket's start in each bar's tooltip."""
    width, height, gap = 720, 120, 2
    values = [_number(b[field]) for b in buckets]
    top = scale or max([v for v in values if v is not None] + [1.0])
    step = width / len(buckets)
    bars = []
    for i, (bucket, value) in enumerate(zip(buckets, values)):
        shown = "no data" if value is None else (
            f"{value:.1%}" if unit == "%" else f"≤ {value:g} s")
        tall = 0 if value is None else max(1.0, height * min(value, top) / top)
        colour = "#ccc" if value is None else (
            COLOURS["complete"] if unit == "s" or value >= AVAILABILITY_TARGET
            else COLOURS["below"])
        bars.append(f'<rect x="{i * step:.1f}" y="{height - tall:.1f}" '
                    f'width="{step - gap:.1f}" height="{tall:.1f}" fill="{colour}">'
                    f'<title>{escape(bucket["start"])}: {shown}</title></rect>')
    axis = (f'<text x="0" y="{height + 12}">{escape(buckets[0]["start"][:16])}</text>'
            f'<text x="{width}" y="{height + 12}" text-anchor="end">'
            f'{escape(buckets[-1]["start"][:16])}</text>'
            f'<text x="{width}" y="10" text-anchor="end">'
            f'{"100 %" if unit == "%" else f"{top:g} s"}</text>')
    return (f'<svg class="chart" data-field="{field}" width="{width}" height="{height + 16}" '
            f'role="img">{"".join(bars)}{axis}</svg>')


def _number(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):  # beyond the last latency bucket, e.g. ">7200"
        return float(value.lstrip(">"))
    return float(value)
