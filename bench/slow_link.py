"""Stations on an NB-IoT-like link, protocol v1 against v2: `.venv/bin/python
bench/slow_link.py [--quick]`.

Every station's connection to the broker goes through a proxy on loopback
(bench/link_proxy.py) that makes it a link of its own of 20 kbit/s each way with a 300 ms
round trip: bytes queue in the proxy as in a modem, leave at the link's rate and arrive
150 ms later. 100 stations report live records (one every ``--live-every`` seconds each,
10 by default: accelerated minutes, so that a drain of a minute still gives each station
several); one station comes back with a 24-hour backlog of one-minute records, built one
record per batch as an outage makes them. For v1 and then v2, in the same run: live latency
(record committed in the station's outbox → the collector's ack for it, which comes after
the catalog commit and back over the slow link) with no backlog and while the backlog
drains, for every station and for the draining station alone, and the backlog's drain time.
Targets (issue 21): live p99 ≤ 10 s while the backlog drains; the backlog drains at least
10× faster on v2 than on v1.

What is real: Mosquitto, the collector process and its SQLite catalog, and on the station
side the agent's own code (sink with QC, outbox, uplink with lanes, bundles, v2) as in
bench/backlog_drain.py, whose fleet this bench runs. What is simulated: the gateways, and
the radio link (a queue with a rate and a delay: no loss, no radio sleep states).
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, str(Path(__file__).parent))

from backlog_drain import (MINUTE_US, REALTIME_WINDOW, FleetPlan, build_backlogs,  # noqa: E402
                           enrol_stations, percentile, private_bytes, run_phase, station_id)
from link_proxy import LinkProxy  # noqa: E402

from obslink.agent.outbox import Outbox  # noqa: E402
from obslink.demo.broker import Mosquitto  # noqa: E402
from obslink.readings import now_us  # noqa: E402
from obslink.server.catalog import open_catalog  # noqa: E402

LINK_BYTES_PER_S = 20_000 / 8  # 20 kbit/s
ONE_WAY_DELAY_S = 0.150  # a 300 ms round trip
BACKLOG_STATION = 0
BUNDLE = 32


def latency_line(label: str, latencies: list[float]) -> str:
    if not latencies:
        return f"  {label:<44} no live record acked"
    return (f"  {label:<44} p50 {percentile(latencies, 0.5):6.2f} s  p99 "
            f"{percentile(latencies, 0.99):6.2f} s  max {max(latencies):6.2f} s  "
            f"({len(latencies)} records)")


def run_protocol(base: Path, broker: Mosquitto, protocol: int, keys: list[bytes],
                 hours: int, baseline_seconds: float, live_every: float) -> dict:
    """Both phases for one protocol, with a collector and catalog of its own."""
    directory = base / f"v{protocol}"
    (directory / "baseline").mkdir(parents=True)
    (directory / "backlog").mkdir()
    catalog_path = directory / "catalog.db"
    catalog = open_catalog(catalog_path)
    enrol_stations(catalog, [Ed25519PrivateKey.from_private_bytes(k) for k in keys])
    catalog.close()
    newest = now_us() // MINUTE_US * MINUTE_US - int(REALTIME_WINDOW) * 1_000_000
    build_backlogs((directory / "backlog", [BACKLOG_STATION], hours, newest))
    # the station spoke to this collector before its outage: it knows whether v2 is taken
    outbox = Outbox(directory / "backlog" / f"{station_id(BACKLOG_STATION)}.db",
                    station_id(BACKLOG_STATION), "OFF")
    outbox.set_meta("collector_protocol", "2")
    outbox.close()
    proxy = LinkProxy(broker.port, LINK_BYTES_PER_S, ONE_WAY_DELAY_S).start()
    collector = subprocess.Popen(
        [sys.executable, "-m", "obslink", "--log-level", "warning", "collector", "serve",
         "--db", str(catalog_path), "--broker", broker.url, "--group", f"slow-v{protocol}",
         "--watch-every", "0"])
    try:
        time.sleep(1.5)  # let the collector subscribe
        plan = FleetPlan(protocol=protocol, live_every=live_every,
                         backlog_stations=frozenset({BACKLOG_STATION}))
        print(f"v{protocol}: {len(keys)} stations live, no backlog, {baseline_seconds:.0f} s …",
              flush=True)
        baseline, _, _, _ = run_phase(directory / "baseline", keys, proxy.port, 0, BUNDLE,
                                      baseline_seconds, f"v{protocol} no backlog", plan)
        print(f"v{protocol}: station {station_id(BACKLOG_STATION)} drains {hours} h of "
              "backlog while every station reports live …", flush=True)
        raw: list = []
        since = time.monotonic()
        during, drain_seconds, _, _ = run_phase(directory / "backlog", keys, proxy.port,
                                                hours * 60, BUNDLE, None,
                                                f"v{protocol} drain", plan, raw)
        own = [latency for _at, latency, station in raw
               if station == station_id(BACKLOG_STATION)]
        sent = sum(p.size for p in proxy.published(since))
    finally:
        collector.terminate()
        collector.wait()
        proxy.stop()
    return {"baseline": baseline, "during": during, "own": own, "drain": drain_seconds,
            "bytes": sent}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stations", type=int, default=100)
    parser.add_argument("--hours", type=int, default=24, help="the one station's backlog")
    parser.add_argument("--live-every", type=float, default=10.0,
                        help="seconds between a station's live records (an accelerated minute)")
    parser.add_argument("--baseline-seconds", type=float, default=60.0)
    parser.add_argument("--quick", action="store_true",
                        help="a 6-hour backlog and a 30 s baseline")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.quick:
        args.hours, args.baseline_seconds = 6, 30.0
    results = {}
    with tempfile.TemporaryDirectory(prefix="obslink-slow-") as tmp:
        base = Path(tmp)
        keys = [private_bytes(Ed25519PrivateKey.generate()) for _ in range(args.stations)]
        with Mosquitto(base / "broker", persistence=False) as broker:
            for protocol in (1, 2):
                results[protocol] = run_protocol(base, broker, protocol, keys, args.hours,
                                                 args.baseline_seconds, args.live_every)
    print(f"\n{args.stations} stations on links of {LINK_BYTES_PER_S * 8 / 1000:.0f} kbit/s, "
          f"{ONE_WAY_DELAY_S * 2000:.0f} ms round trip; one drains {args.hours} h of "
          f"one-minute records; live records every {args.live_every:.0f} s a station")
    for protocol in (1, 2):
        result = results[protocol]
        print(f"protocol v{protocol}: backlog drained in {result['drain']:.0f} s; data "
              f"messages on the links meanwhile {result['bytes'] / 1000:,.0f} kB")
        print(latency_line("live, no backlog (all stations)", result["baseline"]))
        print(latency_line("live while it drains (all stations)", result["during"]))
        print(latency_line("live while it drains (the draining station)", result["own"]))
    v1, v2 = results[1], results[2]
    worst = max(percentile(v2["during"], 0.99), percentile(v2["own"], 0.99)
                if v2["own"] else 0.0)
    print(f"v2 live p99 while draining: {worst:.2f} s (target ≤ 10 s: "
          f"{'met' if worst <= 10 else 'MISSED'})")
    speedup = v1["drain"] / v2["drain"]
    print(f"drain time v1 / v2: {speedup:.1f}× (target ≥ 10×: "
          f"{'met' if speedup >= 10 else 'MISSED'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
