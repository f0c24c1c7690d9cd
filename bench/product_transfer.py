"""Radar products through obslink against raw MQTT, in the same run:
`.venv/bin/python bench/product_transfer.py [--quick] [--size-mb N] [--volumes K]
[--in-flight N]`.

CINRAD volumes of about --size-mb MB (plain, not compressed: what is measured is moving
bytes, not bzip2) go
- raw: as many 1 MiB messages as the products have pieces, published by one `mosquitto_pub
  -f PIECE --repeat N` (QoS 1) to a `mosquitto_sub -C N` on the same broker, from the
  start of the publisher until the subscriber has them all; the best of three runs;
- through obslink: dropped into a real agent's products directory (settle and poll 0.1 s);
  from the rename until the real collector has registered the product in the catalog (its
  commit time; read, copied, hashed and signed at the agent; verified, written once and
  checked whole at the centre).
Two runs, each against raw MQTT moving the same bytes: one volume alone (the latency of a
product, its taking in and the settle and poll times included), and --volumes volumes
dropped together (the sustained rate: one is taken in while another travels).
Printed: MB/s of each and obslink / raw (target, issue 20: at least 50 %), the peak RSS
(VmHWM) of the agent and of the collector (its process and its MQTT child) while the
products moved (target with a 200 MB product: 80 MB each), and the CPU time each process
used meanwhile.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from obslink.demo.broker import Mosquitto
from obslink.demo.radar_products import RadarScan, write_cinrad
from obslink.keys import key_id, load_public_key, public_bytes, write_keypair
from obslink.server.catalog import Station, open_catalog

PIECE = 1 << 20


def make_product(directory: Path, size_mb: float, number: int = 0) -> Path:
    # 2 moments of 4,000 gates a radial: ~8 KB a radial, 720 radials a cut
    cuts = max(1, round(size_mb * 1e6 / (720 * 2 * 4032)))
    scan = RadarScan(elevations=tuple(0.5 + 0.9 * n for n in range(cuts)), radials=720,
                     gates=4000, moments=("REF", "VEL"), seed=number,
                     start_s=RadarScan.start_s + 360 * number)
    return write_cinrad(directory / f"volume-{number}.bin", scan, compress=False)


def raw_seconds(broker: Mosquitto, products: list[Path], pieces_dir: Path) -> float:
    """One mosquitto_pub publishing a 1 MiB piece as many times as the products have
    pieces (--repeat: one process, no start-up per piece), QoS 1, to a mosquitto_sub that
    exits once it has them all."""
    pieces_dir.mkdir(parents=True)
    piece = pieces_dir / "piece"
    with open(products[0], "rb") as source:
        piece.write_bytes(source.read(PIECE))
    count = sum(-(-product.stat().st_size // PIECE) for product in products)
    subscriber = subprocess.Popen(["mosquitto_sub", "-p", str(broker.port), "-t", "raw/x",
                                   "-q", "1", "-C", str(count)], stdout=subprocess.DEVNULL)
    time.sleep(0.5)  # the subscription stands
    started = time.perf_counter()
    subprocess.run(["mosquitto_pub", "-p", str(broker.port), "-t", "raw/x", "-q", "1",
                    "-f", str(piece), "--repeat", str(count)], check=True)
    subscriber.wait(120)
    return time.perf_counter() - started


def peak_rss_mb(pid: int) -> float:
    """VmHWM of a process and its children (the collector's MQTT link is one), MB."""
    total = 0
    for task in [pid] + _children(pid):
        try:
            for line in open(f"/proc/{task}/status"):
                if line.startswith("VmHWM:"):
                    total = max(total, int(line.split()[1]))
        except OSError:
            pass
    return total / 1024


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) a process and its children have used so far."""
    total = 0
    for task in [pid] + _children(pid):
        try:
            fields = open(f"/proc/{task}/stat").read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return total / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            found += [int(child) for child in
                      open(f"/proc/{pid}/task/{task}/children").read().split()]
        except OSError:
            pass
    return found


def radar_station(station: Path, catalog_path: Path, broker_url: str, products: Path,
                  pattern: str, settings: str = "", uplink: str = "") -> Path:
    """A radar gateway BENCH-RADAR: its key, enrolled in the catalog, and an agent config
    taking ``pattern`` from ``products`` (with the shipped defaults unless ``settings``, or
    ``uplink`` for its [uplink] section)."""
    write_keypair(station / "station.key", station / "station.pub")
    public = load_public_key(station / "station.pub")
    catalog = open_catalog(catalog_path)
    catalog.add_station(Station("BENCH-RADAR", "bench"), public_bytes(public), key_id(public))
    catalog.close()
    config = station / "agent.toml"
    config.write_text(f"""\
[station]
id = "BENCH-RADAR"
network = "bench"
private_key = "station.key"
[outbox]
path = "outbox.db"
[uplink]
broker = "{broker_url}"
{uplink}
[products.radar]
path = "{products}"
format = "cinrad"
pattern = "{pattern}"
""" + settings)
    return config


def obslink_seconds(base: Path, broker: Mosquitto, products: list[Path], uplink: str):
    """Seconds from the first rename to the last registration, (before, after) peak RSS
    of the agent and of the collector, and the CPU seconds of each process meanwhile."""
    catalog_path = base / "catalog.db"
    radar_dir = base / "radar" / "incoming"
    radar_dir.mkdir(parents=True)
    config = radar_station(base / "radar", catalog_path, broker.url, radar_dir, "*.bin",
                           "settle_seconds = 0.1\npoll_interval = 0.1\n", uplink)
    logs = open(base / "processes.log", "ab")
    collector = subprocess.Popen([sys.executable, "-m", "obslink", "collector", "serve",
                                  "--db", str(catalog_path), "--broker", broker.url],
                                 stdout=logs, stderr=logs)
    agent = subprocess.Popen([sys.executable, "-m", "obslink", "agent", "run", str(config)],
                             stdout=logs, stderr=logs)
    try:
        time.sleep(3)  # both connected
        before = peak_rss_mb(agent.pid), peak_rss_mb(collector.pid)
        processes = {"agent": agent.pid, "collector": collector.pid,
                     "broker": broker.process.pid}
        cpu = {name: cpu_seconds(pid) for name, pid in processes.items()}
        staged = [radar_dir / f".{product.name}.tmp" for product in products]
        for product, copy in zip(products, staged):
            shutil.copy(product, copy)
        started = time.time()
        for product, copy in zip(products, staged):
            os.replace(copy, radar_dir / product.name)
        while True:
            with sqlite3.connect(f"file:{catalog_path}?mode=ro", uri=True, timeout=10) as conn:
                registered = conn.execute("SELECT count(*), max(committed_at) FROM products"
                                          ).fetchone()
            if registered[0] == len(products):
                break
            if agent.poll() is not None or collector.poll() is not None:
                raise SystemExit(f"a process ended; see {base / 'processes.log'}")
            if time.time() - started > 600:
                raise SystemExit(f"{registered[0]} of {len(products)} products registered "
                                 f"after 10 minutes; see {base / 'processes.log'}")
            time.sleep(0.05)
        cpu = {name: cpu_seconds(pid) - cpu[name] for name, pid in processes.items()}
        seconds = datetime.fromisoformat(registered[1]).timestamp() - started  # the catalog's
        return seconds, (before[0], peak_rss_mb(agent.pid)), \
            (before[1], peak_rss_mb(collector.pid)), cpu
    finally:
        for process in (agent, collector):
            process.terminate()
            process.wait(30)


def compare(label: str, base: Path, broker: Mosquitto, products: list[Path],
            uplink: str) -> None:
    megabytes = sum(product.stat().st_size for product in products) / 1e6
    # the raw baseline's best of three (a process per piece varies): the ratio errs against
    # obslink
    raw = min(raw_seconds(broker, products, base / f"pieces-{n}") for n in range(3))
    ours, agent_rss, collector_rss, cpu = obslink_seconds(base / "obslink", broker, products,
                                                          uplink)
    print(f"{label}: {megabytes:.1f} MB\n"
          f"  raw mosquitto_pub/sub, 1 MiB messages{megabytes / raw:8.1f} MB/s\n"
          f"  obslink agent → collector → store    {megabytes / ours:8.1f} MB/s   "
          f"obslink / raw = {raw / ours:.2f}\n"
          f"  peak RSS: agent {agent_rss[1]:.0f} MB (started: {agent_rss[0]:.0f}), collector "
          f"{collector_rss[1]:.0f} MB (started: {collector_rss[0]:.0f})\n"
          f"  CPU seconds while they moved: " + ", ".join(
              f"{name} {used:.2f}" for name, used in cpu.items()) +
          f" (of {ours:.2f} s on {os.cpu_count()} cores)", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=50.0)
    parser.add_argument("--volumes", type=int, default=4,
                        help="volumes dropped together in the second run")
    parser.add_argument("--in-flight", type=int, default=None,
                        help="the agent's product_in_flight (default: its own default)")
    parser.add_argument("--quick", action="store_true", help="10 MB products")
    args = parser.parse_args()
    size = 10.0 if args.quick else args.size_mb
    uplink = "" if args.in_flight is None else f"product_in_flight = {args.in_flight}"
    if uplink:
        print(f"agent: {uplink}", flush=True)
    for tool in ("mosquitto_pub", "mosquitto_sub"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: apt-get install mosquitto-clients")
    with tempfile.TemporaryDirectory(prefix="obslink-products-") as name:
        base = Path(name)
        products = [make_product(base, size, number) for number in range(args.volumes)]
        with Mosquitto(base / "broker") as broker:
            compare("one volume", base / "one", broker, products[:1], uplink)
            compare(f"{len(products)} volumes dropped together", base / "several", broker,
                    products, uplink)
    return 0


if __name__ == "__main__":
    sys.exit(main())
