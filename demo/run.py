"""``obslink demo``: a broker, a collector and simulated stations, end to end, with a summary."""

from __future__ import annotations

import json
import math
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from obslink.demo.broker import Mosquitto, free_port
from obslink.keys import key_id, load_public_key, public_bytes, write_keypair
from obslink.readings import now_us
from obslink.demo.simulated_radar import SimulatedRadar
from obslink.demo.simulator import (KINDS, SimulatedDAU, SimulatedLogger, SimulatedTOB1Logger,
                               demo_start_time, write_agent_config)

NETWORK = "demo"
DRAIN_TIMEOUT_S = 60.0
STARTUP_TIMEOUT_S = 30.0


def obslink_process(args: list[str], log_path: Path) -> subprocess.Popen:
    log = open(log_path, "ab")
    return subprocess.Popen([sys.executable, "-m", "obslink", *args], stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def stop_process(process: subprocess.Popen, timeout: float = 10) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_demo(stations: int, duration: float, speed: float, directory: Path | None,
             as_json: bool) -> int:
    if stations < 1 or duration <= 0 or speed <= 0:
        raise SystemExit("error: --stations, --duration and --speed must be positive")
    keep = directory is not None
    base = Path(directory or tempfile.mkdtemp(prefix="obslink-demo-")).resolve()
    base.mkdir(parents=True, exist_ok=True)
    say = partial(print, file=sys.stderr)
    processes: list[subprocess.Popen] = []
    loggers: list = []  # the simulated stations, closed whatever happens
    broker = Mosquitto(base / "broker")
    try:
        broker.start()
        say(f"demo: broker on {broker.url}, working directory {base}")
        catalog_path = base / "catalog.db"
        # accelerated time: the simulated minutes end now, never ahead of the clock
        loggers = _set_up_stations(base, stations, catalog_path,
                                   demo_start_time(math.ceil(duration * speed / 60)))
        processes.append(obslink_process(
            ["collector", "serve", "--db", str(catalog_path), "--broker", broker.url],
            base / "collector.log"))
        for logger in loggers:
            station_dir = base / "stations" / logger.station
            make_config = getattr(logger, "agent_config", None) or partial(
                write_agent_config, station=logger)
            config = make_config(path=station_dir / "agent.toml", network=NETWORK,
                                 broker_url=broker.url,
                                 private_key=station_dir / "station.key",
                                 outbox=station_dir / "outbox.db")
            processes.append(obslink_process(["agent", "run", str(config)],
                                             station_dir / "agent.log"))
        say(f"demo: collector and {len(loggers)} agents started "
            f"({', '.join(f'{l.station} ({l.kind_name})' for l in loggers)})")
        _wait_until_connected(base, loggers, processes, say)
        written = _simulate(loggers, duration, speed, catalog_path, say, processes)
        produced = sum(l.records * l.values_per_record for l in loggers)
        committed = _wait_for_drain(catalog_path, produced, say)
        radars = [logger for logger in loggers if hasattr(logger, "written")]
        products = _wait_for_products(catalog_path, radars, say)
        summary = _summarise(catalog_path, written, produced, committed, len(loggers),
                             duration, base if keep else None)
        summary["radar_products"] = products
        summary["kinds"] = sorted({logger.kind_name for logger in loggers})
    finally:
        for logger in loggers:
            getattr(logger, "close", lambda: None)()
        for process in processes:
            stop_process(process)
        broker.stop()
    if as_json:
        print(json.dumps(summary))
    else:
        _print_summary(summary)
    if not keep:
        shutil.rmtree(base, ignore_errors=True)
    clean = summary["readings_committed"] == produced and summary["refused"] == 0 and \
        summary["radar_products"]["identical"] == summary["radar_products"]["written"]
    return 0 if clean else 1


def _simulated_station(index: int, station: str, directory: Path, start):
    """Station kinds in turn: a TOA5 weather station, an HJ 212 air-quality unit over TCP,
    a TOB1 hydrological logger, a TOA5 radiation station, …"""
    kind = index % 4
    if kind == 0:
        return SimulatedLogger(station, KINDS[0], directory / "logger", start, seed=index)
    if kind == 1:
        return SimulatedDAU(station, free_port(), start, seed=index)
    if kind == 2:
        return SimulatedTOB1Logger(station, directory / "logger", start, seed=index)
    return SimulatedLogger(station, KINDS[1], directory / "logger", start, seed=index)


def _set_up_stations(base: Path, count: int, catalog_path: Path, start) -> list:
    """``count`` stations of the kinds in turn, and a radar."""
    from obslink.server.catalog import Station, open_catalog

    catalog = open_catalog(catalog_path)
    stations = []
    for index in range(count + 1):
        station = f"0-20000-0-{54511 + index}" if index < count else "Z9010"
        station_dir = base / "stations" / station
        write_keypair(station_dir / "station.key", station_dir / "station.pub",
                      overwrite=True)
        public = load_public_key(station_dir / "station.pub")
        simulated = _simulated_station(index, station, station_dir, start) if index < count \
            else SimulatedRadar(station, station_dir / "radar", start, seed=index)
        catalog.add_station(Station(station, NETWORK, f"demo {simulated.kind_name} "
                                    f"{index + 1}", interval_seconds=60),
                            public_bytes(public), key_id(public))
        stations.append(simulated)
    catalog.close()
    return stations


def _wait_until_connected(base: Path, loggers, processes, say) -> None:
    """Stations start reporting once every agent and the collector are connected, so the
    latency figures measure the running system, not process start-up."""
    logs = [base / "collector.log"] * 2 + [base / "stations" / l.station / "agent.log"
                                           for l in loggers]
    markers = ["collector ready: subscribed", "collector ready for products"] + \
        ["connected to broker"] * len(loggers)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if all(log.exists() and marker in log.read_text(errors="replace")
               for log, marker in zip(logs, markers)):
            return
        _check_processes(processes)
        time.sleep(0.1)
    say(f"demo: not every process connected within {STARTUP_TIMEOUT_S:.0f} s; "
        "starting anyway (see the logs)")


def _check_processes(processes) -> None:
    for process in processes:
        if process.poll() is not None:
            raise SystemExit(f"error: a demo process exited early (code "
                             f"{process.returncode}): {' '.join(process.args[3:])}; "
                             "see the logs in the demo directory (use --dir to keep it)")


def _simulate(loggers, duration, speed, catalog_path, say, processes) -> dict:
    """Write records in accelerated time; return {(station, observed_at): written µs}."""
    written: dict[tuple[str, int], int] = {}
    tick = 60.0 / speed  # one simulated minute
    started = time.monotonic()
    next_tick = started
    last_report = 0.0
    while (now := time.monotonic()) - started < duration:
        _check_processes(processes)
        if now >= next_tick:
            for logger in loggers:
                observed_at = logger.write_next()
                if observed_at is not None:  # None: a TCP station whose agent is not up yet
                    written[(logger.station, observed_at)] = now_us()
            next_tick += tick
        if now - last_report >= 1.0:
            produced = sum(l.records * l.values_per_record for l in loggers)
            say(f"demo: {now - started:5.1f}/{duration:.0f} s  produced {produced:>6} readings"
                f"  committed {_count(catalog_path):>6}")
            last_report = now
        time.sleep(max(0.0, min(next_tick - time.monotonic(), 0.1)))
    return written


def _count(catalog_path: Path) -> int:
    try:
        with sqlite3.connect(f"file:{catalog_path}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT count(*) FROM observations").fetchone()[0]
    except sqlite3.Error:
        return 0


def _wait_for_drain(catalog_path: Path, produced: int, say) -> int:
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    committed = _count(catalog_path)
    while committed < produced and time.monotonic() < deadline:
        time.sleep(0.2)
        committed = _count(catalog_path)
    say(f"demo: stations stopped writing; {committed} of {produced} readings committed")
    return committed


def _wait_for_products(catalog_path: Path, radars, say) -> dict:
    """Until every tilt the radars wrote is registered (or the drain timeout): how many were
    written, registered, and registered with exactly the bytes written."""
    expected = {name: digest for radar in radars for name, digest in radar.written.items()}
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while True:
        try:
            with sqlite3.connect(f"file:{catalog_path}?mode=ro", uri=True, timeout=5) as conn:
                registered = dict(conn.execute("SELECT name, sha256 FROM products"))
        except sqlite3.Error:
            registered = {}
        if len(registered) >= len(expected) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    identical = sum(registered.get(name) == digest for name, digest in expected.items())
    say(f"demo: {len(registered)} of {len(expected)} radar tilts registered")
    return {"written": len(expected), "registered": len(registered), "identical": identical}


def _summarise(catalog_path, written, produced, committed, stations, duration, kept) -> dict:
    from obslink.readings import QC_FLAG_NAMES, format_utc

    with sqlite3.connect(f"file:{catalog_path}?mode=ro", uri=True) as conn:
        batches, = conn.execute("SELECT count(*) FROM batches").fetchone()
        # protocol v2 from each station's first ack on (docs/protocol.md, "Version 2")
        by_protocol = dict(conn.execute(
            "SELECT substr(topic, 1, 10), count(*) FROM batches GROUP BY 1"))
        refused, = conn.execute("SELECT count(*) FROM refusals").fetchone()
        rows = conn.execute(
            "SELECT o.station, o.observed_at, min(b.committed_at) FROM observations o "
            "JOIN batches b ON b.id = o.batch_id GROUP BY o.station, o.observed_at").fetchall()
        flags = dict(conn.execute("SELECT qc, count(*) FROM observations GROUP BY qc"))
    iso_to_us = {format_utc(us, fixed=True): us for (_s, us) in written}
    latencies = sorted(
        (_iso_us(committed_at) - written[(station, iso_to_us[observed])]) / 1000
        for station, observed, committed_at in rows
        if observed in iso_to_us and (station, iso_to_us[observed]) in written)
    summary = {
        "stations": stations, "duration_s": duration,
        "readings_produced": produced, "readings_committed": committed,
        "batches": batches, "refused": refused,
        "batches_by_protocol": {root.rsplit("/", 1)[-1]: count
                                for root, count in sorted(by_protocol.items())},
        "qc_flags": {QC_FLAG_NAMES.get(flag, str(flag)): count
                     for flag, count in sorted(flags.items())},
        "qc_coverage_percent": round(100 * (committed - flags.get(9, 0)) / committed, 2)
        if committed else None,
        "latency_ms": {"p50": _percentile(latencies, 50), "p99": _percentile(latencies, 99)},
    }
    # as of the last simulated minute: the stations stop there, and a report made a minute
    # later would rightly count that minute's successor as missing (docs/monitoring.md)
    last_simulated = max((observed for _station, observed in written), default=None)
    summary["monitoring"] = _monitoring(catalog_path, last_simulated)
    if kept:
        summary["directory"] = str(kept)
    return summary


def _monitoring(catalog_path: Path, last_simulated_us: int | None) -> dict:
    """The network as monitoring saw it when the simulated stations stopped (docs/
    monitoring.md): the hour's completeness up to and with the last simulated minute, each
    station's status, and the alarms the collector's watch raised."""
    from obslink.readings import now_us
    from obslink.server.catalog import open_catalog
    from obslink.server.monitoring.measures import ARRIVAL_GRACE_US
    from obslink.server.monitoring.report import period_report

    catalog = open_catalog(catalog_path)
    try:
        # the report expects nothing of the last ARRIVAL_GRACE_US before its "now"
        now = now_us() if last_simulated_us is None else \
            last_simulated_us + ARRIVAL_GRACE_US + 1
        network = period_report(catalog, now - 3_600_000_000, now, now)["network"]
        alarms = [alarm["rule"] for alarm in catalog.alarms(open_only=False)]
    finally:
        catalog.close()
    return {"completeness_percent": None if network["completeness"] is None
            else round(100 * network["completeness"], 1),
            "by_status": network["by_status"],
            "alarms_raised": {rule: alarms.count(rule) for rule in sorted(set(alarms))}}


def _iso_us(text: str) -> int:
    from datetime import datetime

    from obslink.readings import utc_us_from_datetime

    return utc_us_from_datetime(datetime.fromisoformat(text.replace("Z", "+00:00")))


def _percentile(values: list[float], percent: float) -> float | None:
    if not values:
        return None
    rank = max(1, math.ceil(percent / 100 * len(values)))  # nearest-rank percentile
    return round(values[rank - 1], 1)


def _monitoring_line(found: dict) -> str:
    statuses = ", ".join(f"{count} {status}" for status, count in found["by_status"].items())
    alarms = ", ".join(f"{count} {rule}" for rule, count in found["alarms_raised"].items())
    return (f"to the last simulated minute {found['completeness_percent']} % complete "
            f"({statuses}); alarms raised: {alarms or 'none'}")


def _products_line(found: dict) -> str:
    return (f"{found['written']} tilts written, {found['registered']} registered, "
            f"{found['identical']} byte-identical")


def _print_summary(summary: dict) -> None:
    latency = summary["latency_ms"]
    print(f"""
obslink demo summary
  stations            {summary['stations']} simulated ({', '.join(summary['kinds'])})
  readings produced   {summary['readings_produced']}
  readings committed  {summary['readings_committed']}
  batches             {summary['batches']} ({', '.join(
      f'{n} {v}' for v, n in summary['batches_by_protocol'].items())})
  refused             {summary['refused']}
  QC flags            {', '.join(f'{n} {c}' for n, c in summary['qc_flags'].items())}
  QC coverage         {summary['qc_coverage_percent']} %
  latency written→committed  p50 {latency['p50']} ms, p99 {latency['p99']} ms
  radar products      {_products_line(summary['radar_products'])}
  monitoring          {_monitoring_line(summary['monitoring'])}""")
    if "directory" in summary:
        print(f"  kept in            {summary['directory']}")
