"""A simulated weather radar for the demo: a CINRAD gateway writing one tilt file of CMA
standard format base data every simulated minute (a volume of 9 tilts every 9 minutes), as
radars write them (under a temporary name, then renamed), and a line of its status log in
obslink's generic status mapping (docs/products.md, "Radar status"): transmitter peak
power and temperatures, and the alarms active (one for a few minutes, now and then)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path

from obslink.demo.radar_products import RadarScan, cinrad_tilt_name, write_cinrad
from obslink.readings import format_utc

STATUS_HEADER = "time,peak_power_kw,transmitter_temp_c,shelter_temp_c,alarm_count,alarm_code\n"
STATUS_ELEMENTS = (("radar_peak_power", "kW"), ("radar_transmitter_temperature", "degC"),
                   ("radar_shelter_temperature", "degC"), ("equipment_alarm_count", "1"),
                   ("equipment_alarm_code", "1"))


class SimulatedRadar:
    kind_name = "radar-cinrad"
    utc_offset = "UTC"
    values_per_record = len(STATUS_ELEMENTS)  # a status line; the tilts are products
    TILTS = (0.5, 1.45, 2.4, 3.35, 4.3, 6.0, 9.9, 14.6, 19.5)

    def __init__(self, station: str, directory: Path, start, seed: int = 0) -> None:
        self.station, self.directory = station, directory
        directory.mkdir(parents=True, exist_ok=True)
        self.start_s = int(start.timestamp())
        self.seed = seed
        self.records = 0  # status lines written
        self.tilts = 0
        self.written: dict[str, str] = {}  # file name -> SHA-256 hex
        self.status = directory.parent / "status"
        self.status.mkdir(parents=True, exist_ok=True)
        (self.status / "status.csv").write_text(STATUS_HEADER)
        self.expected: list[tuple] = []  # (observed µs, element, value, unit) written

    def write_next(self) -> int:
        """The next tilt and status line; returns the status line's time (µs)."""
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
        return self._status_line()

    def _status_line(self) -> int:
        observed = (self.start_s + self.records * 60) * 1_000_000
        alarms = 1 if self.records % 40 in (10, 11, 12) else 0  # a transmitter arc, cleared
        values = (round(650 - (self.records % 7) * 0.8, 1), round(38 + (self.records % 5) *
                  0.3, 1), 22.5, alarms, 4107 if alarms else 0)
        with open(self.status / "status.csv", "a") as log:
            log.write(f"{format_utc(observed)},"
                      + ",".join(f"{value:g}" for value in values) + "\n")
        self.expected += [(observed, element, float(value), unit)
                          for (element, unit), value in zip(STATUS_ELEMENTS, values)]
        self.records += 1
        return observed

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

[sources.status]
type = "directory"
format = "delimited"
path = "{self.status}"
pattern = "*.csv"
poll_interval = 0.2
utc_offset = "UTC"

[sources.status.options]
time_columns = "time"
time_format = "%Y-%m-%dT%H:%M:%SZ"

[sources.status.elements]
"peak_power_kw" = {{ element = "radar_peak_power", unit = "kW" }}
"transmitter_temp_c" = {{ element = "radar_transmitter_temperature", unit = "degC" }}
"shelter_temp_c" = {{ element = "radar_shelter_temperature", unit = "degC" }}
"alarm_count" = {{ element = "equipment_alarm_count", unit = "1" }}
"alarm_code" = {{ element = "equipment_alarm_code", unit = "1" }}

[products.radar]
path = "{self.directory}"
format = "cinrad"
pattern = "Z_RADR_I_*.bin.bz2"
settle_seconds = 0.2
poll_interval = 0.2
""")
        return path
