"""CMA standard format weather radar base data (CINRAD, "RSTM" files): metadata only.

Layout (little-endian; the field offsets are those of PyCINRAD's ``standard_data`` structs,
which tests/test_radar_formats.py reads our products back with): a 32-byte generic header
(magic 0x4D545352, versions, generic type 1 = base data), a 128-byte site block, a 256-byte
task block (scan start in Unix seconds UTC, cut count), one 256-byte cut block per cut, then
radials: a 64-byte radial header and, per moment, a 32-byte moment header and its bins.
Files hold one cut or a whole volume and are usually bzip2-compressed. The walk checks every
radial's framing and that the product ends with an end-of-tilt or end-of-volume radial.
"""

from __future__ import annotations

import math
import struct
from typing import BinaryIO

from obslink.plugins.markers import hookimpl
from obslink.plugins.products import (ProductFormat, ProductFormatError, ProductMetadata,
                                      ProductStream, Sweep)

MAGIC = 0x4D545352  # b"RSTM" read as a little-endian int
GENERIC = struct.Struct("<iHHii16x")
SITE = struct.Struct("<8s32sffii")  # code, name, latitude, longitude, antenna/ground height
TASK = struct.Struct("<32s128siiiii")  # name, description, polar, scan type, pulse, start, cuts
CUT_ELEVATION = struct.Struct("<f")  # at offset 24 of a cut block
RADIAL = struct.Struct("<iiiiiffiiii")  # state … moment count: the first 44 of 64 bytes
MOMENT = struct.Struct("<iiihhi12x")  # type, scale, offset, bin bytes, flags, block length
SITE_BYTES, TASK_BYTES, CUT_BYTES, RADIAL_BYTES = 128, 256, 256, 64
MAX_CUTS, MAX_MOMENTS, MAX_BLOCK = 256, 64, 1 << 24
# radial states (CMA standard format): 0 start of tilt, 1 inside, 2 end of tilt, 3 start of
# volume, 4 end of volume, 5 start of the last tilt, 6 end of an RHI
END_OF_TILT, END_OF_FILE = 2, {4: "volume", 6: "tilt"}
# moment data type codes and their names, as PyCINRAD names them
MOMENT_NAMES = {1: "TREF", 2: "REF", 3: "VEL", 4: "SW", 5: "SQI", 6: "CPA", 7: "ZDR",
                8: "LDR", 9: "RHO", 10: "PHI", 11: "KDP", 12: "CP", 14: "HCL", 15: "CF",
                16: "SNRH", 17: "SNRV", 19: "POTS", 21: "COP", 26: "VELSZ", 27: "DR",
                32: "Zc", 33: "Vc", 34: "Wc", 35: "ZDRc"}


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("ascii", errors="replace").strip()


class CinradBaseData(ProductFormat):
    name = "cinrad"
    version = "1"
    summary = "CMA standard format radar base data (RSTM), bzip2 or plain: metadata"

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return len(head) >= 4 and struct.unpack_from("<i", head)[0] == MAGIC

    def read_metadata(self, stream: BinaryIO, name: str = "") -> ProductMetadata:
        data = ProductStream(stream)
        magic, major, minor, generic_type, product_type = GENERIC.unpack(
            data.read(GENERIC.size, "the generic header"))
        if magic != MAGIC:
            raise ProductFormatError(f"not CMA standard format base data: magic "
                                     f"0x{magic & 0xFFFFFFFF:08X}, expected 0x{MAGIC:08X}", 0)
        if generic_type != 1:
            what = "phased-array base data" if generic_type == 16 else "not base data"
            raise ProductFormatError(f"generic type {generic_type} ({what}); this adapter "
                                     "reads base data, generic type 1", 8)
        site = data.read(SITE_BYTES, "the site block")
        code, site_name, latitude, longitude, antenna_m, ground_m = SITE.unpack_from(site)
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            raise ProductFormatError(f"site position {latitude}, {longitude} is not a "
                                     "latitude and longitude in degrees", GENERIC.size + 40)
        task = data.read(TASK_BYTES, "the task block")
        task_name, _description, _polar, scan_type, _pulse, start_s, cuts = \
            TASK.unpack_from(task)
        if not 1 <= cuts <= MAX_CUTS:
            raise ProductFormatError(f"the task block declares {cuts} cuts (1 to "
                                     f"{MAX_CUTS} expected)", GENERIC.size + SITE_BYTES + 176)
        elevations = []
        for number in range(1, cuts + 1):
            block = data.read(CUT_BYTES, f"cut block {number} of {cuts}")
            (elevation,) = CUT_ELEVATION.unpack_from(block, 24)
            if not math.isfinite(elevation) or not -90 <= elevation <= 90:
                raise ProductFormatError(f"cut {number} has elevation {elevation}°",
                                         data.offset - CUT_BYTES + 24)
            elevations.append(elevation)
        radials, moments, first_us, last_us, end = self._walk(data, cuts)
        sweeps = tuple(Sweep(number, round(elevations[number - 1], 4), radials[number],
                             tuple(moments[number])) for number in sorted(radials))
        return ProductMetadata(
            format=self.name, site=_text(code), start_us=start_s * 1_000_000,
            end_us=last_us, complete=True, kind=end, sweeps=sweeps,
            site_name=_text(site_name), latitude=round(latitude, 6),
            longitude=round(longitude, 6), height_m=float(ground_m),
            scan_strategy=_text(task_name),
            extra={"version": f"{major}.{minor}", "product_type": product_type,
                   "scan_type": "RHI" if scan_type == 2 else "PPI", "cuts": cuts,
                   "antenna_height_m": antenna_m, "first_radial_us": first_us})

    @staticmethod
    def _walk(data: ProductStream, cuts: int):
        """Every radial's framing, to the end-of-tilt or end-of-volume radial."""
        radials: dict[int, int] = {}
        moments: dict[int, list[str]] = {}
        first_us = last_us = None
        count = 0
        while True:
            if data.at_end():
                where = f"after {count:,} radials" if count else "before its first radial"
                raise ProductFormatError(f"truncated: the product ends {where}, without an "
                                         "end-of-tilt or end-of-volume radial", data.offset)
            count += 1
            header = data.read(RADIAL_BYTES, f"radial {count}'s header")
            (state, _blank, _seq, _number, cut, _azimuth, _elevation, seconds, micros,
             _length, moment_count) = RADIAL.unpack_from(header)
            if not 1 <= cut <= cuts:
                raise ProductFormatError(f"radial {count} belongs to cut {cut}; the task "
                                         f"block declares {cuts}", data.offset - 48)
            if not 0 <= moment_count <= MAX_MOMENTS:
                raise ProductFormatError(f"radial {count} declares {moment_count} moments",
                                         data.offset - 24)
            radials[cut] = radials.get(cut, 0) + 1
            names = moments.setdefault(cut, [])
            for index in range(moment_count):
                kind, _scale, _offset, _bin, _flags, length = MOMENT.unpack(
                    data.read(MOMENT.size, f"moment {index + 1} of radial {count}"))
                if not 0 <= length <= MAX_BLOCK:
                    raise ProductFormatError(f"moment {index + 1} of radial {count} declares "
                                             f"{length} bytes of bins", data.offset - 16)
                data.skip(length, f"the bins of moment {index + 1} of radial {count}")
                moment = MOMENT_NAMES.get(kind, f"type {kind}")
                if length and moment not in names:
                    names.append(moment)
            when = seconds * 1_000_000 + micros
            first_us = when if first_us is None else first_us
            last_us = when
            if state in END_OF_FILE:
                if not data.at_end():
                    raise ProductFormatError(f"bytes follow radial {count}, which ends the "
                                             f"{END_OF_FILE[state]}", data.offset)
                return radials, moments, first_us, last_us, END_OF_FILE[state]
            if state == END_OF_TILT and data.at_end():  # a file of one tilt
                return radials, moments, first_us, last_us, "tilt"


@hookimpl
def obslink_register_product_formats(registry):
    registry.add_product_format(CinradBaseData)
