"""Radar products of our own making, for the demo, the tests and the benchmarks: CMA
standard format base data (CINRAD) volumes or single tilts, NEXRAD Level II volumes and
real-time chunk feeds. Headers are valid, sizes realistic (a volume of 9 cuts × 360 radials
× 3 moments × 1,000 gates is ~10 MB before compression), bins look like weather (echo over a
part of each radial, nothing beyond) so that bzip2 compresses them as it does real data.
Everything is written a radial (CINRAD) or an LDM record (NEXRAD) at a time, so a 200 MB
product is never held in memory. Public readers (PyCINRAD, MetPy) read these files back in
tests/test_radar_formats.py.
"""

from __future__ import annotations

import bz2
import random
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

CINRAD_MAGIC = 0x4D545352
DAY_MS = 86_400_000


@dataclass(frozen=True)
class RadarScan:
    """What a product describes: where, when, how it scanned."""

    site: str = "Z9010"
    site_name: str = "Nanjing"
    latitude: float = 32.191
    longitude: float = 118.697
    antenna_height_m: int = 158
    ground_height_m: int = 140
    start_s: int = 1_796_000_400  # 2026-11-30T01:00:00Z
    task: str = "VCP21D"
    vcp: int = 212
    elevations: tuple[float, ...] = (0.5, 1.45, 2.4, 3.35, 4.3, 6.0, 9.9, 14.6, 19.5)
    radials: int = 360
    gates: int = 1000
    moments: tuple[str, ...] = ("REF", "VEL", "SW")
    seed: int = 0


# echo values drawn from 32 levels: about as compressible as real reflectivity
_LEVELS = bytes(range(70, 102)) * 8


class _Bins:
    """Radial after radial of plausible bins: echo over a random stretch (32 levels, fresh
    for every radial), zeros (below threshold) beyond; bzip2 makes them 3-4× smaller,
    as it does real base data."""

    def __init__(self, gates: int, seed: int) -> None:
        self.random = random.Random(seed)
        self.gates = gates

    def radial(self) -> bytes:
        echo = self.random.randrange(self.gates // 4, self.gates // 2)
        return self.random.randbytes(echo).translate(_LEVELS) + bytes(self.gates - echo)


class _Sink:
    """A file written plain or through a bzip2 compressor, a piece at a time."""

    def __init__(self, out: BinaryIO, compress: bool) -> None:
        self.out = out
        self.compressor = bz2.BZ2Compressor(9) if compress else None

    def write(self, data: bytes) -> None:
        self.out.write(self.compressor.compress(data) if self.compressor else data)

    def close(self) -> None:
        if self.compressor:
            self.out.write(self.compressor.flush())


# --- CINRAD: CMA standard format base data ------------------------------------------------

CINRAD_MOMENT_CODES = {"TREF": 1, "REF": 2, "VEL": 3, "SW": 4, "ZDR": 7, "RHO": 9,
                       "PHI": 10, "KDP": 11}


def cinrad_header(scan: RadarScan) -> bytes:
    """Generic header, site, task and cut blocks: everything before the first radial."""
    generic = struct.pack("<iHHii16x", CINRAD_MAGIC, 1, 0, 1, 1)
    site = struct.pack("<8s32sffiifffi", scan.site.encode(), scan.site_name.encode(),
                       scan.latitude, scan.longitude, scan.antenna_height_m,
                       scan.ground_height_m, 2800.0, 0.95, 0.95, 1).ljust(128, b"\0")
    task = struct.pack("<32s128siiiii", scan.task.encode(), b"obslink test volume", 1, 0, 1,
                       scan.start_s, len(scan.elevations)).ljust(256, b"\0")
    cuts = b"".join(
        struct.pack("<iiffiffffffiiiiiiiiff", 1, 0, 1000.0, 1000.0, 0, 0.0, elevation, 0.0,
                    360.0, 1.0, 15.0, 250, 250, 230_000, 230_000, 0, 32, 32, 1, 0.011,
                    27.0).ljust(256, b"\0") for elevation in scan.elevations)
    return generic + site + task + cuts


def _cinrad_radials(scan: RadarScan, cut: int, whole_volume: bool) -> Iterator[bytes]:
    bins = _Bins(scan.gates, scan.seed * 1000 + cut)
    codes = [CINRAD_MOMENT_CODES[name] for name in scan.moments]
    elevation = scan.elevations[cut - 1]
    last_cut = cut == len(scan.elevations)
    for number in range(1, scan.radials + 1):
        if number == 1:
            state = 3 if whole_volume and cut == 1 else 0
        elif number == scan.radials:
            state = 4 if whole_volume and last_cut else 2
        else:
            state = 1
        seconds = scan.start_s + (cut - 1) * 30 + number * 30 // scan.radials
        blocks = b"".join(struct.pack("<iiihhi12x", code, 2, 66, 1, 0, scan.gates)
                          + bins.radial() for code in codes)
        header = struct.pack("<iiiiiffiiiihhhc13x", state, 0, number, number, cut,
                             (number - 1) * 360.0 / scan.radials, elevation, seconds,
                             (number * 1000) % 1_000_000, len(blocks), len(codes), 0, -5000,
                             -5000, b"\0")
        yield header + blocks


def write_cinrad(path: Path, scan: RadarScan = RadarScan(), *, cut: int | None = None,
                 compress: bool = True) -> Path:
    """A whole volume, or (``cut``) the file of that one tilt, as radars write them."""
    with open(path, "wb") as out:
        sink = _Sink(out, compress)
        sink.write(cinrad_header(scan))
        for number in ([cut] if cut else range(1, len(scan.elevations) + 1)):
            for radial in _cinrad_radials(scan, number, cut is None):
                sink.write(radial)
        sink.close()
    return path


def cinrad_tilt_name(scan: RadarScan, cut: int) -> str:
    """CMA's naming of base data files, with the tilt number appended."""
    from datetime import datetime, timezone

    when = datetime.fromtimestamp(scan.start_s, timezone.utc).strftime("%Y%m%d%H%M%S")
    return f"Z_RADR_I_{scan.site}_{when}_O_DOR_SAD_CAP_FMT_{cut:02d}.bin.bz2"


# --- NEXRAD Level II ---------------------------------------------------------------------

NEXRAD_MOMENTS = {"REF": (2.0, 66.0), "VEL": (2.0, 129.0), "SW": (2.0, 129.0),
                  "ZDR": (16.0, 128.0), "PHI": (2.8361, 2.0), "RHO": (300.0, -60.5)}


def _julian(ms_since_epoch: int) -> tuple[int, int]:
    return ms_since_epoch // DAY_MS + 1, ms_since_epoch % DAY_MS


def volume_header(scan: RadarScan, volume_number: int = 1) -> bytes:
    date, ms = _julian(scan.start_s * 1000)
    return (b"AR2V0006." + b"%03d" % (volume_number % 1000) + struct.pack(">II", date, ms)
            + scan.site[:4].ljust(4).encode())


def _message(kind: int, body: bytes, when_ms: int, seq: int) -> bytes:
    date, ms = _julian(when_ms)
    if kind == 31:
        body += b"\0" * (len(body) % 2)
        header = struct.pack(">HBBHHIHH", (16 + len(body)) // 2, 8, kind, seq % 0x10000,
                             date, ms, 1, 1)
        return bytes(12) + header + body
    # other messages fill a 2,432-byte frame; the size says how much of it is the message
    header = struct.pack(">HBBHHIHH", (16 + len(body)) // 2, 8, kind, seq % 0x10000, date,
                         ms, 1, 1)
    return bytes(12) + header + body.ljust(2432 - 28, b"\0")


def _vcp_message(scan: RadarScan) -> bytes:
    elevations = b"".join(
        struct.pack(">HBBBBH", round(angle * 2**16 / 360) & 0xFFFF, 0, 1, 0, 1, 15)
        .ljust(46, b"\0") for angle in scan.elevations)
    head = struct.pack(">HHHHBBBB4xHH2x", (22 + len(elevations)) // 2, 2, scan.vcp,
                       len(scan.elevations), 1, 1, 2, 2, 0, 0)
    return _message(5, head + elevations, scan.start_s * 1000, 1)


def _radial_message(scan: RadarScan, cut: int, number: int, bins: dict, seq: int) -> bytes:
    if number == 1:
        status = 3 if cut == 1 else 0
    elif number == scan.radials:
        status = 4 if cut == len(scan.elevations) else 2
    else:
        status = 1
    when_ms = scan.start_s * 1000 + (cut - 1) * 30_000 + number * 30_000 // scan.radials
    date, ms = _julian(when_ms)
    volume = struct.pack(">1s3sHBBffhHfffffHH", b"R", b"VOL", 44, 1, 0, scan.latitude,
                         scan.longitude, scan.ground_height_m, 20, -44.0, 700.0, 700.0, 0.0,
                         60.0, scan.vcp, 0)
    elevation = struct.pack(">1s3sHhf", b"R", b"ELV", 12, -12, -44.0)
    radial = struct.pack(">1s3sHHffH2x", b"R", b"RAD", 20, 4660, -80.0, -80.0, 2800)
    moments = [struct.pack(">1s3sIHHHHhBBff", b"D", name.ljust(3).encode(), 0, scan.gates,
                           2125, 250, 500, 16, 0, 8, *NEXRAD_MOMENTS[name])
               + bins[name].radial() for name in scan.moments]
    blocks = [volume, elevation, radial] + moments
    pointers, at = [], 32 + 4 * len(blocks)
    for block in blocks:
        pointers.append(at)
        at += len(block)
    header = struct.pack(">4sIHHfBxHBBBBfBBH", scan.site[:4].ljust(4).encode(), ms, date,
                         number, (number - 1) * 360.0 / scan.radials, 0, at,
                         2 if scan.radials <= 360 else 1, status, cut, 1,
                         scan.elevations[cut - 1], 0, 0, len(blocks))
    body = header + struct.pack(f">{len(blocks)}I", *pointers) + b"".join(blocks)
    return _message(31, body, when_ms, seq)


def _record(messages: bytes, last: bool) -> bytes:
    compressed = bz2.compress(messages, 9)
    return struct.pack(">i", -len(compressed) if last else len(compressed)) + compressed


def nexrad_records(scan: RadarScan, radials_per_record: int = 120) -> Iterator[tuple[int,
                                                                                       bytes]]:
    """(cut, LDM record) for the metadata record (cut 0), then the radials' records; a
    record never spans two cuts, so each cut ends a record (as real feeds cut tilts)."""
    yield 0, _record(_vcp_message(scan) + bytes(2432), False)  # VCP, then a padding frame
    seq = 3
    for cut in range(1, len(scan.elevations) + 1):
        bins = {name: _Bins(scan.gates, scan.seed * 1000 + cut * 10 + index)
                for index, name in enumerate(scan.moments)}
        pending = []
        for number in range(1, scan.radials + 1):
            pending.append(_radial_message(scan, cut, number, bins, seq))
            seq += 1
            if len(pending) == radials_per_record or number == scan.radials:
                last = cut == len(scan.elevations) and number == scan.radials
                yield cut, _record(b"".join(pending), last)
                pending = []


def write_nexrad_volume(path: Path, scan: RadarScan = RadarScan(site="KOBL"),
                        volume_number: int = 1) -> Path:
    with open(path, "wb") as out:
        out.write(volume_header(scan, volume_number))
        for _cut, record in nexrad_records(scan):
            out.write(record)
    return path


def nexrad_chunk_name(scan: RadarScan, number: int, kind: str) -> str:
    """NOAA's real-time chunk naming: ICAO_YYYYMMDD-HHMMSS-NNN-K (K: S, I or E)."""
    from datetime import datetime, timezone

    when = datetime.fromtimestamp(scan.start_s, timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{scan.site[:4]}_{when}-{number:03d}-{kind}"


def write_nexrad_chunks(directory: Path, scan: RadarScan = RadarScan(site="KOBL"),
                        volume_number: int = 1) -> list[Path]:
    """A real-time feed of one volume: a start chunk (volume header and metadata record),
    one intermediate chunk per cut but the last, an end chunk with the last cut."""
    paths, records = [], nexrad_records(scan, radials_per_record=scan.radials)
    _cut, metadata = next(records)
    path = directory / nexrad_chunk_name(scan, 1, "S")
    path.write_bytes(volume_header(scan, volume_number) + metadata)
    paths.append(path)
    for cut, record in records:
        kind = "E" if cut == len(scan.elevations) else "I"
        path = directory / nexrad_chunk_name(scan, cut + 1, kind)
        path.write_bytes(record)
        paths.append(path)
    return paths
