"""Radar tilts beside live stations: `.venv/bin/python bench/tilt_latency.py [--quick]`.

A real radar agent (`obslink agent run`, its products directory read with the shipped
defaults: settle 2 s, poll 1 s) sends volumes of about --volume-mb MB (bzip2 CINRAD base
data, 9 tilts) written tilt by tilt, while --stations one-minute stations report live (the
drain bench's fleet: the agent's own sink, outbox and uplink code, one MQTT connection each)
to the same collector and broker. Printed, from the same run:
- tilt latency: a tilt's file renamed into the radar's directory → the tilt registered in
  the catalog (its committed_at), p50 / p99 / max over the tilts (target, issue 20: p99
  ≤ 10 s);
- the live stations' latency (a minute committed in the station's outbox → the collector's
  ack) p50 / p99 with no radar, then while the tilts move, and the ratio (target: no change
  beyond noise).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from backlog_drain import enrol_stations, percentile, private_bytes, run_phase
from product_transfer import radar_station
from obslink.agent.config import AgentConfig
from obslink.demo.broker import Mosquitto
from obslink.demo.radar_products import RadarScan, cinrad_tilt_name, write_cinrad
from obslink.readings import now_us
from obslink.server.catalog import open_catalog

TILTS = (0.5, 1.45, 2.4, 3.35, 4.3, 6.0, 9.9, 14.6, 19.5)


def make_tilts(directory: Path, volume_mb: float, volumes: int) -> list[Path]:
    """``volumes`` volumes of 9 tilt files, bzip2 CINRAD base data, ~volume_mb MB each."""
    gates = max(200, int(volume_mb * 1e6 * 4.3 / (len(TILTS) * 720 * 3)))
    paths = []
    for volume in range(volumes):
        scan = RadarScan(site="BENCH-RADAR", start_s=int(time.time()) // 360 * 360 + volume *
                         360, elevations=TILTS, radials=720, gates=gates, seed=volume)
        for cut in range(1, len(TILTS) + 1):
            paths.append(write_cinrad(directory / cinrad_tilt_name(scan, cut), scan, cut=cut))
    return paths


def write_tilt_by_tilt(tilts: list[Path], products: Path, every_s: float,
                       written: dict[str, float]) -> None:
    """Each tilt copied in under a temporary name and renamed, one every ``every_s``."""
    for path in tilts:
        temporary = products / f".{path.name}.part"
        shutil.copy(path, temporary)
        os.replace(temporary, products / path.name)
        written[path.name] = now_us() / 1e6
        time.sleep(every_s)


def registered(catalog_path: Path) -> dict[str, float]:
    with sqlite3.connect(f"file:{catalog_path}?mode=ro", uri=True, timeout=10) as conn:
        return {name: datetime.fromisoformat(committed.replace("Z", "+00:00")).timestamp()
                for name, committed in conn.execute("SELECT name, committed_at FROM products")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stations", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60,
                        help="each phase: live alone, then live while the tilts move")
    parser.add_argument("--volume-mb", type=float, default=20)
    parser.add_argument("--volumes", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="30 s phases, one 10 MB volume")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.quick:
        args.seconds, args.volume_mb, args.volumes = 30, 10, 1
    with tempfile.TemporaryDirectory(prefix="obslink-tilts-") as tmp:
        base = Path(tmp)
        print(f"writing {args.volumes} volume(s) of ~{args.volume_mb:.0f} MB, 9 tilts each …",
              flush=True)
        (base / "made").mkdir()
        tilts = make_tilts(base / "made", args.volume_mb, args.volumes)
        print(f"  {sum(p.stat().st_size for p in tilts) / 1e6:.1f} MB in {len(tilts)} tilts",
              flush=True)
        keys = [Ed25519PrivateKey.generate() for _ in range(args.stations)]
        catalog_path = base / "catalog.db"
        catalog = open_catalog(catalog_path)
        enrol_stations(catalog, keys)
        catalog.close()
        products = base / "radar" / "products"
        products.mkdir(parents=True)
        raw_keys = [private_bytes(key) for key in keys]
        written: dict[str, float] = {}
        with Mosquitto(base / "broker", persistence=False) as broker:
            config = radar_station(base / "radar", catalog_path, broker.url, products,
                                   "Z_RADR_I_*.bin.bz2")  # the shipped settle and poll times
            collector = subprocess.Popen(
                [sys.executable, "-m", "obslink", "--log-level", "warning", "collector",
                 "serve", "--db", str(catalog_path), "--broker", broker.url])
            radar = None
            try:
                time.sleep(1.5)
                print(f"{args.stations} stations live for {args.seconds:.0f} s, no radar …",
                      flush=True)
                (base / "alone").mkdir()
                alone, _, _, _ = run_phase(base / "alone", raw_keys, broker.port, 0,
                                           AgentConfig.backlog_bundle, args.seconds, "alone")
                radar = subprocess.Popen(
                    [sys.executable, "-m", "obslink", "--log-level", "warning", "agent", "run",
                     str(config)])
                time.sleep(2)
                print(f"… and for {args.seconds:.0f} s while the radar sends its tilts …",
                      flush=True)
                writer = threading.Thread(target=write_tilt_by_tilt, args=(
                    tilts, products, args.seconds / (len(tilts) + 1), written))
                writer.start()
                (base / "radar-phase").mkdir()
                beside, _, _, _ = run_phase(base / "radar-phase", raw_keys, broker.port, 0,
                                            AgentConfig.backlog_bundle, args.seconds, "radar")
                writer.join()
                deadline = time.monotonic() + 120
                while len(registered(catalog_path)) < len(tilts):
                    if time.monotonic() > deadline:
                        raise SystemExit("not every tilt was registered within 120 s")
                    time.sleep(0.2)
                done = registered(catalog_path)
            finally:
                for process in (radar, collector):
                    if process is not None:
                        process.terminate()
                        process.wait(30)
    latencies = sorted(done[name] - at for name, at in written.items())
    p99_alone, p99_beside = percentile(alone, .99), percentile(beside, .99)
    print(f"\ntilt latency (written → registered), {len(latencies)} tilts of "
          f"{args.volume_mb / 9:.1f} MB: p50 {percentile(latencies, .5):.2f} s, p99 "
          f"{percentile(latencies, .99):.2f} s, max {latencies[-1]:.2f} s (target p99 ≤ 10 s)")
    print(f"live stations, no radar:    p50 {percentile(alone, .5) * 1000:6.0f} ms   p99 "
          f"{p99_alone * 1000:6.0f} ms   ({len(alone)} live minutes)")
    print(f"live stations, with radar:  p50 {percentile(beside, .5) * 1000:6.0f} ms   p99 "
          f"{p99_beside * 1000:6.0f} ms   ({len(beside)} live minutes); p99 with / without "
          f"= {p99_beside / p99_alone:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
