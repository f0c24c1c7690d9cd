"""A simulated weather radar for the demo: a CINRAD gateway writing one tilt file of CMA
standard format base data every simulated minute (a volume of 9 tilts every 9 minutes), as
radars write them: under a temporary name, then renamed."""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path

from obslink.demo.radar_products import RadarScan, cinrad_tilt_name, write_cinrad


class SimulatedRadar:
    kind_name = "radar-cinrad"
    utc_offset = "UTC"
    values_per_record = 0  # products, not readings
    TILTS = (0.5, 1.45, 2.4, 3.35, 4.3, 6.0, 9.9, 14.6, 19.5)

    def __init__(self, station: str, directory: Path, start, seed: int = 0) -> None:
        self.station, self.directory = station, directory
        directory.mkdir(parents=True, exist_ok=True)
        self.start_s = int(start.timestamp())
        self.seed = seed
        self.records = 0  # readings: none
        self.tilts = 0
        self.written: dict[str, str] = {}  # file name -> SHA-256 hex

    def write_next(self) -> None:
        volume, cut = divmod(self.tilts, len(self.TILTS))
        scan = RadarScan(site=self.station, site_name="demo radar",
                         start_s=self.start_s + volume * 6 * 60, elevations=self.TILTS,
                         radials=360, gates=500, seed=self.seed + volume)
        name = cinrad_tilt_name(scan, cut + 1)
        temporary = self.directory / f".{name}.part"
        write_cinrad(temporary, replace(scan), cut=cut + 1)
        os.replace(temporary, self.directory / name)
        self.written[name] = hashlib.sha256((self.directory / name).read_bytes()).hexdigest()
        self.tilts += 1
        return None  # no readings

    def agent_config(self, path: Path, network: str, broker_url: str, private_key: Path,
                     outbox: Path) -> Path:
        path.write_text(f"""\
[station]
id = "{self.station}"
network = "{network}"
private_key = "{private_key}"

[outbox]
path = "{outbox}"

[uplink]
broker = "{broker_url}"
ack_timeout = 10

[products.radar]
path = "{self.directory}"
format = "cinrad"
pattern = "Z_RADR_I_*.bin.bz2"
settle_seconds = 0.2
poll_interval = 0.2
""")
        return path
