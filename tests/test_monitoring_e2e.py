"""Monitoring end to end (docs/monitoring.md): a real broker, collector and agents; a
station that goes silent raises its alarm within 3 of its reporting intervals, measured;
the alarm reaches a retained MQTT topic and a webhook, shows on the dashboard in a real
headless Chromium (Debian's), and clears when the station reports again."""

from __future__ import annotations

import json
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from obslink.demo.simulator import demo_start_time
from obslink.server.catalog import open_catalog
from tests.conftest import API_TOKENS, admin_http, listening, wait_until
from tests.test_catalog_api import serve

pytestmark = pytest.mark.e2e
INTERVAL_S = 4  # the silent rule (2 intervals) leaves 1 for the 1 s watch and a busy machine
SCREENSHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"


class Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        self.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def silent_alarms(deployment, station: str, open_only: bool = True) -> list[tuple]:
    return deployment.catalog.query(
        "SELECT id, raised_us, cleared_us FROM alarms WHERE station = ? AND rule = 'silent'"
        + (" AND cleared_us IS NULL" if open_only else ""), station)


def last_committed(deployment, station: str) -> int | None:
    found = deployment.catalog.query("SELECT last_committed_us FROM monitor_stations WHERE "
                                     "station = ?", station)
    return found[0][0] if found else None


def test_a_silent_station_is_alarmed_delivered_shown_and_cleared(deployment_on_each_backend,
                                                                 broker):
    deployment = deployment_on_each_backend
    Hook.received = []
    hook_server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook_server.serve_forever, daemon=True).start()
    steady, quiet = deployment.add_station("STEADY"), deployment.add_station("QUIET", 1)
    catalog = open_catalog(deployment.catalog_path)
    for station in (steady, quiet):
        station.logger.interval_s = INTERVAL_S  # records as often as the schedule says
        catalog.update(station.id, interval_seconds=INTERVAL_S)
    catalog.add_webhook(f"http://127.0.0.1:{hook_server.server_address[1]}/alarms")
    catalog.close()
    deployment.start_collector(options=("--watch-every", "1s"))
    deployment.start_agent(steady)
    deployment.start_agent(quiet)

    # STEADY reports as its schedule says until the end; QUIET for a few intervals, then
    # stops, and later starts again
    stop, quiet_reports = threading.Event(), threading.Event()
    quiet_reports.set()
    writing = threading.Lock()  # QUIET's last record is written before it falls silent

    def report() -> None:
        while not stop.wait(INTERVAL_S):  # the stations' cadence, not a wait for a result
            with writing:
                steady.logger.write_next()
                if quiet_reports.is_set():
                    quiet.logger.write_next()
    reporter = threading.Thread(target=report, daemon=True)
    reporter.start()
    try:
        check_silent_station(deployment, broker, quiet_reports, writing, quiet)
    finally:
        stop.set()
        reporter.join()
        hook_server.shutdown()


def check_silent_station(deployment, broker, quiet_reports: threading.Event,
                         writing: threading.Lock, quiet) -> None:
    wait_until(lambda: last_committed(deployment, "QUIET") is not None, timeout=30,
               message="QUIET's first batch")
    time.sleep(2 * INTERVAL_S)  # a few more of QUIET's records, at its cadence
    with writing:
        quiet_reports.clear()
        written = len(quiet.logger.expected)
    # every record QUIET wrote arrives first: one still on its way when the alarm rose
    # would clear it (on a busy machine a record may take longer than the silence)
    wait_until(lambda: deployment.catalog.query(
        "SELECT count(*) FROM observations WHERE station = 'QUIET'")[0][0] == written,
        timeout=60, message="QUIET's last records")
    wait_until(lambda: silent_alarms(deployment, "QUIET"), timeout=60,
               message="QUIET's silent alarm")
    ((_, raised_us, _),) = silent_alarms(deployment, "QUIET")
    silence_s = (raised_us - last_committed(deployment, "QUIET")) / 1e6
    print(f"QUIET silent {silence_s:.1f} s before its alarm ({INTERVAL_S} s interval)")
    assert silence_s <= 3 * INTERVAL_S, silence_s
    assert not silent_alarms(deployment, "STEADY")

    # delivered: the retained topic holds it for a subscriber that comes later
    with listening(broker.port, "obslink/v1/+/QUIET/alarm/silent") as received:
        wait_until(lambda: received, timeout=15, message="the retained alarm")
        message = json.loads(received[0].payload)
        assert received[0].retain and message["state"] == "raised"
    wait_until(lambda: any(m["station"] == "QUIET" for m in Hook.received), timeout=30,
               message="the webhook's delivery")

    url, http = serve(deployment.catalog_path, deployment.base)
    try:
        page = admin_http.get(f"{url}/dashboard", timeout=30).text
        assert "http://" not in page and "https://" not in page, "the page loads from elsewhere"
        shown, errors = dashboard_in_chromium(url, deployment.base)
        assert errors == [], errors
        assert shown["QUIET"] == "not-reporting" and shown["STEADY"] != "not-reporting"
        network = admin_http.get(f"{url}/v1/monitor/network", timeout=30).json()
        assert {s["station"]: s["status"] for s in network["stations"]}["QUIET"] == \
            "not-reporting"
        alarms = admin_http.get(f"{url}/v1/alarms", timeout=30).json()
        assert any(a["station"] == "QUIET" and a["rule"] == "silent" for a in alarms)
        metrics = admin_http.get(f"{url}/metrics", timeout=30).text
        assert 'obslink_alarms_open{rule="silent"} 1.0' in metrics
        assert 'obslink_station_last_seen_age_seconds{station="QUIET"}' in metrics
    finally:
        http.stop()

    # QUIET reports again: the alarm clears, and the clearing is delivered too
    quiet_reports.set()
    wait_until(lambda: not silent_alarms(deployment, "QUIET"), timeout=60,
               message="QUIET's alarm to clear")
    assert silent_alarms(deployment, "QUIET", open_only=False)[0][2] is not None
    wait_until(lambda: any(m["station"] == "QUIET" and m["state"] == "cleared"
                           for m in Hook.received), timeout=30,
               message="the clearing's webhook delivery")


def dashboard_in_chromium(url: str, directory: Path) -> tuple[dict[str, str], list[str]]:
    """The dashboard as Debian's Chromium shows it: each tile's status, the console's
    errors; a screenshot is kept in build/screenshots/."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    assert chromium, "Chromium is missing: run ./scripts/bootstrap.sh, which installs it"
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 800})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("requestfailed", lambda r: errors.append(f"failed: {r.url}"))
            # not logged in: the login page, then back to the dashboard with a session
            page.goto(f"{url}/dashboard", wait_until="load")
            assert "/login" in page.url, page.url
            page.fill("input[name=token]", API_TOKENS[urlsplit(url).netloc])
            with page.expect_navigation(wait_until="load"):
                page.click("button[type=submit]")
            assert page.url == f"{url}/dashboard", page.url
            (cookie,) = page.context.cookies()
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict", cookie
            shown = {tile.get_attribute("data-station"): tile.get_attribute("data-status")
                     for tile in page.query_selector_all(".tile")}
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)
            page.goto(f"{url}/dashboard/stations/QUIET", wait_until="load")
            assert page.query_selector("h1").get_attribute("data-status") == "not-reporting"
            assert len(page.query_selector_all("svg.chart")) == 4
            page.screenshot(path=str(SCREENSHOTS / "dashboard-station.png"), full_page=True)
        finally:
            browser.close()
    return shown, errors


def scrape(port: int) -> dict[str, float]:
    """Prometheus text as {series: value}, comments left out."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {line.rpartition(" ")[0]: float(line.rpartition(" ")[2])
            for line in text.splitlines() if line and not line.startswith("#")}


def test_agent_and_collector_serve_prometheus_metrics(deployment):
    from obslink.demo.broker import free_port

    # its three one-minute records end a minute ago: all of them within the last hour the
    # gauges count, whatever the minute of the hour (from now on, the last two would fall
    # in the next hour when the test runs in an hour's last minutes)
    station = deployment.add_station("GAUGED", start=demo_start_time(3))
    agent_port, collector_port = free_port(), free_port()
    config = station.config.read_text()
    station.config.write_text(config.replace(
        "[station]\n", f'[station]\nmetrics_listen = "127.0.0.1:{agent_port}"\n', 1))
    deployment.start_agent(station)
    for _ in range(3):
        station.logger.write_next()
    per_record = station.logger.values_per_record
    label = '{station="GAUGED"}'

    def waiting() -> float:
        try:
            found = scrape(agent_port)
        except requests.ConnectionError:
            return -1
        return found[f"obslink_agent_live_readings{label}"] + \
            found[f"obslink_agent_backlog_readings{label}"]
    # no collector yet: the records wait in the outbox, and the agent says so
    wait_until(lambda: waiting() == 3 * per_record, timeout=30,
               message="the agent's metrics to show the waiting readings")
    found = scrape(agent_port)
    assert found[f"obslink_agent_broker_connected{label}"] == 1
    assert found[f"obslink_agent_oldest_unacknowledged_age_seconds{label}"] >= 0
    assert found[f"obslink_agent_quarantined_records{label}"] == 0

    deployment.start_collector(options=("--metrics-listen", f"127.0.0.1:{collector_port}"))
    wait_until(lambda: waiting() == 0, timeout=60, message="the outbox to drain")
    committed = scrape(collector_port)
    assert committed["obslink_readings_committed_total"] == 3 * per_record
    assert committed["obslink_batches_committed_total"] >= 1
    assert committed["obslink_batch_latency_seconds_count"] >= 1
    assert committed[f"obslink_station_readings_received{label}"] == 3 * per_record
    assert 'obslink_network_stations{status="not-reporting"}' in committed
