"""Simulated loggers that write TOA5 files, for the demo, the end-to-end tests and bench/.

Each kind is a logger table with its own columns, UTC offset and element mapping, so the
demo exercises the same configuration paths a real deployment does.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

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
                self.expected.append((observed_at, element, None, unit))
                continue
            base = 10 + 40 * (index + 1) * (1 + math.sin(phase + index))
            value = round(base + self.rng.uniform(-1, 1), 3)
            values.append(f"{value:.3f}")
            self.expected.append((observed_at, element, value, unit))
        line = (f'"{local:%Y-%m-%d %H:%M:%S}",{self.records},' + ",".join(values) + "\r\n")
        self.records += 1
        return observed_at, line

    def write_next(self) -> int:
        """Append the next record (and the header first); return its observed_at."""
        new = not self.path.exists()
        observed_at, line = self.next_record()
        with open(self.path, "a", newline="") as out:
            if new:
                out.write(self.header())
            out.write(line)
        return observed_at


def demo_start_time() -> datetime:
    return datetime.now(timezone.utc).replace(second=0, microsecond=0)


def write_agent_config(path: Path, logger: SimulatedLogger, network: str, broker_url: str,
                       private_key: Path, outbox: Path, poll_interval: float = 0.25) -> Path:
    """An agent config for a simulated logger, as a technician would write it."""
    path.write_text(f"""\
[station]
id = "{logger.station}"
network = "{network}"
private_key = "{private_key}"
utc_offset = "{logger.kind.utc_offset}"

[outbox]
path = "{outbox}"

[uplink]
broker = "{broker_url}"
ack_timeout = 10

[sources.logger]
type = "directory"
format = "toa5"
path = "{logger.directory}"
pattern = "*.dat"
poll_interval = {poll_interval}

[sources.logger.elements]
{logger.kind.elements_toml()}
""")
    return path
