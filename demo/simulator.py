"""Simulated stations for the demo, the end-to-end tests and bench/: Campbell loggers
writing TOA5 or TOB1 files, and an HJ 212 data acquisition unit pushing packets over TCP.

Each kind has its own fields, UTC offset and element mapping, so the demo exercises the same
configuration paths a real deployment does. Every simulator records what it produced in
``expected`` (observed_at µs UTC, element, value, unit as the catalog stores it) and offers
its agent ``[sources]``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from obslink.plugins.units import stored_unit
from obslink.readings import utc_us_from_datetime


@dataclass(frozen=True)
class StationKind:
    name: str
    table: str
    utc_offset: str
    columns: tuple[tuple[str, str, str, str], ...]  # (field, unit, processing, element)

    def elements_toml(self) -> str:
        return "\n".join(f'"{f}" = "{element}"' for f, _u, _p, element in self.columns)


KINDS = (
    StationKind("aws", "Min1", "+08:00", (
        ("AirTC_Avg", "Deg C", "Avg", "air_temperature"),
        ("RH", "%", "Smp", "relative_humidity"),
        ("BP_mbar", "mbar", "Avg", "air_pressure"),
        ("WS_ms_Avg", "meters/second", "Avg", "wind_speed"),
        ("WindDir", "degrees", "Smp", "wind_direction"),
        ("Rain_mm_Tot", "mm", "Tot", "precipitation_amount"),
        ("BattV_Min", "Volts", "Min", "battery_voltage"),
    )),
    StationKind("radiation", "Rad1", "+00:00", (
        ("SlrW_Avg", "W/m^2", "Avg", "solar_radiation"),
        ("SlrMJ_Tot", "MJ/m^2", "Tot", "solar_radiation_total"),
        ("PTemp_C", "Deg C", "Smp", "logger_temperature"),
    )),
    StationKind("hydro", "Hyd1", "-03:00", (
        ("WaterLevel_m", "m", "Avg", "water_level"),
        ("WaterT_Avg", "Deg C", "Avg", "water_temperature"),
        ("VWC_Avg", "m^3/m^3", "Avg", "soil_moisture"),
        ("SoilT_Avg", "Deg C", "Avg", "soil_temperature"),
    )),
)


# element -> (mean, daily amplitude): values that pass QC with the default limits
PLAUSIBLE = {
    "air_temperature": (15.0, 8.0), "relative_humidity": (65.0, 25.0),
    "air_pressure": (1010.0, 2.0), "wind_speed": (4.0, 3.0), "wind_direction": (180.0, 150.0),
    "precipitation_amount": (0.4, 0.4), "battery_voltage": (12.8, 0.4),
    "solar_radiation": (400.0, 400.0), "solar_radiation_total": (1.0, 1.0),
    "logger_temperature": (25.0, 10.0), "water_level": (1.5, 0.3),
    "water_temperature": (18.0, 3.0), "soil_moisture": (0.25, 0.05),
    "soil_temperature": (16.0, 4.0),
}


@dataclass
class SimulatedLogger:
    """Appends one record per call to ``write_next`` into ``directory/<table>.dat``."""

    station: str
    kind: StationKind
    directory: Path
    start: datetime  # UTC time of the first record
    interval_s: int = 60
    seed: int = 0
    nan_every: int = 17  # every n-th record has one NAN, as real loggers do
    records: int = 0
    rng: random.Random = field(init=False)
    # (observed_at µs UTC, element, value or None, unit) of every reading written, for checks
    expected: list[tuple[int, str, float | None, str]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / f"{self.station}_{self.kind.table}.dat"
        offset = self.kind.utc_offset
        sign = -1 if offset.startswith("-") else 1
        hours, minutes = offset[1:].split(":")
        self.local_shift = timedelta(minutes=sign * (int(hours) * 60 + int(minutes)))

    @property
    def values_per_record(self) -> int:
        return len(self.kind.columns)

    def header(self) -> str:
        names = ["TIMESTAMP", "RECORD"] + [c[0] for c in self.kind.columns]
        units = ["TS", "RN"] + [c[1] for c in self.kind.columns]
        processing = ["", ""] + [c[2] for c in self.kind.columns]
        quote = lambda row: ",".join(f'"{v}"' for v in row)
        environment = ["TOA5", self.station, "CR1000X", "12345", "CR1000X.Std.07",
                       f"CPU:{self.kind.name}.CR1X", "4242", self.kind.table]
        return "\r\n".join(quote(r) for r in (environment, names, units, processing)) + "\r\n"

    def next_record(self) -> tuple[int, str]:
        """(observed_at in µs UTC, the CRLF-terminated TOA5 line) of the next record."""
        moment = self.start + timedelta(seconds=self.interval_s * self.records)
        local = moment + self.local_shift
        phase = 2 * math.pi * (moment.hour * 60 + moment.minute) / 1440
        observed_at = utc_us_from_datetime(moment)
        values = []
        nan_column = self.records % self.nan_every == self.nan_every - 1
        for index, (_field, unit, _processing, element) in enumerate(self.kind.columns):
            if nan_column and index == self.records % len(self.kind.columns):
                values.append('"NAN"')
                self.expected.append((observed_at, element, None, stored_unit(element, unit)))
                continue
            mean, amplitude = PLAUSIBLE[element]
            # a daily cycle plus a little noise, never below zero where that is impossible
            value = mean + amplitude * (math.sin(phase + index) + self.rng.uniform(-.02, .02))
            value = round(max(value, 0.0) if mean - amplitude >= 0 else value, 3)
            values.append(f"{value:.3f}")
            self.expected.append((observed_at, element, value, stored_unit(element, unit)))
        line = (f'"{local:%Y-%m-%d %H:%M:%S}",{self.records},' + ",".join(values) + "\r\n")
        self.records += 1
        return observed_at, line

    kind_name = property(lambda self: f"{self.kind.name}-toa5")
    utc_offset = property(lambda self: self.kind.utc_offset)

    def sources_toml(self, poll_interval: float) -> str:
        return directory_source_toml("toa5", self.directory, poll_interval,
                                     self.kind.elements_toml())

    def write_next(self) -> int:
        """Append the next record (and the header first); return its observed_at."""
        new = not self.path.exists()
        observed_at, line = self.next_record()
        with open(self.path, "a", newline="") as out:
            if new:
                out.write(self.header())
            out.write(line)
        return observed_at


def demo_start_time(span_minutes: int = 0) -> datetime:
    """The first record's time: this minute, or ``span_minutes`` before it, so that records
    written in accelerated time end at the present instead of running into the future
    (where the time check flags them, docs/qc.md)."""
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    return now - timedelta(minutes=span_minutes)


def directory_source_toml(format_name: str, directory: Path, poll_interval: float,
                          elements_toml: str) -> str:
    """The [sources.logger] section for a logger writing ``*.dat`` files into a directory."""
    return f"""\
[sources.logger]
type = "directory"
format = "{format_name}"
path = "{directory}"
pattern = "*.dat"
poll_interval = {poll_interval}

[sources.logger.elements]
{elements_toml}
"""


def write_agent_config(path: Path, station, network: str, broker_url: str,
                       private_key: Path, outbox: Path, poll_interval: float = 0.25) -> Path:
    """An agent config for a simulated station, as a technician would write it."""
    path.write_text(f"""\
[station]
id = "{station.station}"
network = "{network}"
private_key = "{private_key}"
utc_offset = "{station.utc_offset}"

[outbox]
path = "{outbox}"

[uplink]
broker = "{broker_url}"
ack_timeout = 10

""" + station.sources_toml(poll_interval) + getattr(station, "qc_toml", ""))
    return path


class SimulatedTOB1Logger:
    """A hydrological station's Campbell logger appending TOB1 records."""

    kind_name = "hydro-tob1"
    utc_offset = "-03:00"
    FIELDS = [("WaterLevel_m", "m", "FP2"), ("WaterT_C", "Deg C", "IEEE4"),
              ("BattV", "Volts", "FP2")]
    ELEMENTS = ("water_level", "water_temperature", "battery_voltage")
    values_per_record = 3
    # water level has no default limits (its datum is the station's): the config sets them
    qc_toml = """
[qc.limits.water_level]
min = 0.0
max = 6.0
suspect_max = 4.5
step_max = 0.5
"""

    def __init__(self, station: str, directory: Path, start: datetime, interval_s: int = 60,
                 seed: int = 0) -> None:
        self.station, self.directory, self.start = station, directory, start
        self.interval_s, self.records = interval_s, 0
        self.rng = random.Random(seed)
        self.expected: list[tuple[int, str, float | None, str]] = []
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{station}_Hyd.dat"

    def sources_toml(self, poll_interval: float) -> str:
        mapping = "\n".join(f'"{f[0]}" = "{e}"' for f, e in zip(self.FIELDS, self.ELEMENTS))
        return directory_source_toml("tob1", self.directory, poll_interval, mapping)

    def write_next(self) -> int:
        from obslink.demo.simulated_tob1 import tob1_header, tob1_record

        moment = self.start + timedelta(seconds=self.interval_s * self.records)
        local = moment - timedelta(hours=3)
        values = [round(1.2 + self.rng.uniform(0, 0.3), 3),
                  round(8 + self.rng.uniform(-1, 1), 2), round(12.5 + self.rng.uniform(0, 1), 2)]
        data, _line = tob1_record(self.FIELDS, local.replace(tzinfo=None), self.records, values)
        with open(self.path, "ab") as out:
            if out.tell() == 0:
                out.write(tob1_header(self.FIELDS, "Hyd"))
            out.write(data)
        observed_at = utc_us_from_datetime(moment)
        for (_name, unit, _type), element, value in zip(self.FIELDS, self.ELEMENTS, values):
            self.expected.append((observed_at, element, value, stored_unit(element, unit)))
        self.records += 1
        return observed_at


class SimulatedDAU:
    """An HJ 212 air-quality data acquisition unit that connects to the agent over TCP and
    pushes a real-time packet (CN 2011, Flag=5: reply wanted) per record."""

    kind_name = "airq-hj212"
    utc_offset = "+08:00"
    FACTORS = (("a34004", "pm2_5", "ug/m3"), ("a34002", "pm10", "ug/m3"),
               ("a21026", "so2", "mg/m3"), ("a21004", "no2", "mg/m3"),
               ("a21005", "co", "mg/m3"), ("a05024", "o3", "mg/m3"))
    values_per_record = len(FACTORS)

    def __init__(self, station: str, port: int, start: datetime, interval_s: int = 60,
                 seed: int = 0) -> None:
        self.station, self.port, self.start = station, port, start
        self.interval_s, self.records = interval_s, 0
        self.rng = random.Random(seed)
        self.expected: list[tuple[int, str, float | None, str]] = []
        self.connection = None
        self.replies = 0

    def sources_toml(self, poll_interval: float) -> str:
        return f"""\
[sources.dau]
type = "tcp"
format = "hj212"
listen = "127.0.0.1:{self.port}"
[sources.dau.options]
mn = "{self.station}"
"""

    def _connect(self) -> bool:
        import socket

        if self.connection is None:
            try:
                self.connection = socket.create_connection(("127.0.0.1", self.port), 1)
                self.connection.setblocking(False)
            except OSError:
                return False  # the agent is not listening yet
        return True

    def _count_replies(self) -> None:
        try:
            while chunk := self.connection.recv(65536):
                self.replies += chunk.count(b"CN=9014")
        except (BlockingIOError, OSError):
            pass

    def write_next(self) -> int | None:
        """Send the next packet; None when the agent cannot be reached yet (not produced)."""
        from obslink.plugins.hj212 import frame

        if not self._connect():
            return None
        self._count_replies()
        moment = self.start + timedelta(seconds=self.interval_s * self.records)
        local = moment + timedelta(hours=8)
        pm2_5 = round(self.rng.uniform(5, 80), 1)
        values = [pm2_5, round(pm2_5 * self.rng.uniform(1.2, 2.0), 1)] + [
            round(self.rng.uniform(0.001, 0.2), 3) for _factor in self.FACTORS[2:]]
        items = ";".join(f"{code}-Rtd={value},{code}-Flag=N"
                         for (code, _e, _u), value in zip(self.FACTORS, values))
        stamp = local.strftime("%Y%m%d%H%M%S")
        packet = frame(f"QN={stamp}000;ST=22;CN=2011;PW=123456;MN={self.station};Flag=5;"
                       f"CP=&&DataTime={stamp};{items}&&".encode())
        try:
            self.connection.sendall(packet)
        except OSError:
            self.connection = None
            return None
        observed_at = utc_us_from_datetime(moment)
        for (_code, element, unit), value in zip(self.FACTORS, values):
            self.expected.append((observed_at, element, value, stored_unit(element, unit)))
        self.records += 1
        return observed_at

    def close(self) -> None:
        if self.connection is not None:
            self._count_replies()
            self.connection.close()
