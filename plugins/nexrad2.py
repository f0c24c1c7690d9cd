"""NEXRAD Level II (Archive II) volume files and real-time chunks: metadata only.

Layout (big-endian; field offsets as in MetPy's ``Level2File``, which tests read our products
back with, and NOAA's Interface Control Document 2620010 for Archive II): an optional 24-byte
volume header (``AR2V00nn.`` + volume number, modified Julian date with 1970-01-01 as day 1,
milliseconds after midnight, ICAO), then LDM records, each a 4-byte signed size (negative on
a volume's last record) and one bzip2 stream of messages. A message is a 12-byte CTM header,
a 16-byte message header, and a body: Message 31 (digital radar data, one radial) is as long
as its header says, every other message fills a 2,432-byte frame. A real-time feed cuts a
volume into chunks: a start chunk (volume header and the metadata record), intermediate
chunks of radials, an end chunk whose last radial ends the volume.
"""

from __future__ import annotations

import math
import re
import struct
from typing import BinaryIO

from obslink.plugins.markers import hookimpl
from obslink.plugins.products import (Bzip2Pieces, PieceReader, ProductFormat,
                                      ProductFormatError, ProductMetadata, Sweep)

VOLUME_HEADER = struct.Struct(">9s3sII4s")
CTM_BYTES, FRAME_BYTES = 12, 2432
MESSAGE_HEADER = struct.Struct(">HBBHHIHH")
RADIAL_HEADER = struct.Struct(">4sIHHfBxHBBBBfBBH")  # Message 31's data header, 32 bytes
VOLUME_BLOCK = struct.Struct(">1s3sHBBffhHfffffHH")  # "RVOL", 44 bytes
MAX_BLOCKS, MAX_RECORD = 32, 1 << 26
# Message 31 radial status: 0 start of elevation, 1 inside, 2 end of elevation, 3 start of
# volume, 4 end of volume, 5 start of the last elevation (low bits; high ones flag bad data)
END_OF_VOLUME = 4
CHUNK_NAME = re.compile(r"-(\d+)-([SIE])$")  # NOAA's real-time chunk names, e.g. …-001-S
CHUNK_KINDS = {"S": "start", "I": "intermediate", "E": "end"}


def _time_us(julian_date: int, milliseconds: int) -> int:
    return ((julian_date - 1) * 86_400_000 + milliseconds) * 1000


class _File:
    """The raw file, read exactly or not at all, with the offset it stands at."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream, self.offset = stream, 0

    def read(self, size: int) -> bytes:
        piece = self.stream.read(size)
        self.offset += len(piece)
        return piece


class _Messages(PieceReader):
    """The bytes the messages are in: LDM records' bzip2 streams one after the other, or
    the file's own bytes where the volume is not compressed."""

    def __init__(self, file: _File, first: bytes) -> None:
        super().__init__()
        self.file = file
        self.records = 0
        self._pending = first  # bytes read from the file to tell records from messages
        self.compressed = len(first) >= 7 and first[4:7] == b"BZh"
        self._bzip2: Bzip2Pieces | None = None
        self._left = 0  # compressed bytes of the current record not yet handed over

    def _take(self, size: int) -> bytes:
        head, self._pending = self._pending[:size], self._pending[size:]
        return head + self.file.read(size - len(head)) if len(head) < size else head

    def _record_bytes(self, size: int) -> bytes:
        piece = self._take(min(size, self._left))
        self._left -= len(piece)
        return piece

    def _more(self) -> bytes | None:
        if not self.compressed:
            return self._take(1 << 16) or None
        while True:
            if self._bzip2 is not None:
                piece = self._bzip2.next()
                if piece is not None:
                    return piece
                if self._bzip2.unused or self._left:
                    raise ProductFormatError(f"LDM record {self.records} holds bytes after "
                                             "its bzip2 stream", self.offset)
                self._bzip2 = None
            control = self._take(4)
            if not control:
                return None
            if len(control) < 4:
                raise ProductFormatError("truncated: an LDM record's size needs 4 bytes, the "
                                         f"file ends after {len(control)}", self.offset)
            (size,) = struct.unpack(">i", control)
            self.records += 1
            if not 0 < abs(size) <= MAX_RECORD:
                raise ProductFormatError(f"LDM record {self.records} declares {size:,} bytes",
                                         self.offset)
            self._left = abs(size)
            self._bzip2 = Bzip2Pieces(self._record_bytes, lambda: self.offset)


class Nexrad2(ProductFormat):
    name = "nexrad2"
    version = "1"
    summary = "NEXRAD Level II volume files and real-time chunks (Message 31): metadata"

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return head.startswith(b"AR2V") or (len(head) >= 7 and head[4:7] == b"BZh")

    def read_metadata(self, stream: BinaryIO, name: str = "") -> ProductMetadata:
        file = _File(stream)
        first = file.read(VOLUME_HEADER.size)
        header = None
        if first.startswith(b"AR2V"):
            if len(first) < VOLUME_HEADER.size:
                raise ProductFormatError("truncated: the volume header needs 24 bytes, the "
                                         f"file ends after {len(first)}", 0)
            header = VOLUME_HEADER.unpack(first)
            first = file.read(8)
        messages = _Messages(file, first)
        walk = _walk(messages)
        if not walk["messages"]:
            raise ProductFormatError("truncated: no message follows the volume header"
                                     if header else "no LDM record and no message", 0)
        chunk = CHUNK_NAME.search(name)
        ended = walk["last_status"] == END_OF_VOLUME
        if chunk:
            kind = CHUNK_KINDS[chunk.group(2)]
        elif header is None:
            kind = "end" if ended else "intermediate"
        elif not walk["sweeps"]:
            kind = "start"
        elif ended:
            kind = "volume"
        else:
            raise ProductFormatError(f"truncated: the volume ends after {walk['radials']:,} "
                                     "radials without an end-of-volume radial",
                                     messages.offset)
        if header is None and not walk["sweeps"]:
            raise ProductFormatError("neither a volume header nor a radial: nothing says "
                                     "which radar or when", 0)
        site = (header[4] if header else walk["site"]).decode("ascii", "replace").strip("\0 ")
        start_us = _time_us(header[2], header[3]) if header else walk["first_us"]
        sweeps = tuple(Sweep(number, round(angle, 4), count, tuple(names))
                       for number, (angle, count, names) in sorted(walk["sweeps"].items()))
        volume = walk["volume"]
        return ProductMetadata(
            format=self.name, site=site, start_us=start_us, end_us=walk["last_us"],
            complete=kind in ("volume", "start", "intermediate") or ended, kind=kind,
            sweeps=sweeps, latitude=None if volume is None else round(volume[5], 6),
            longitude=None if volume is None else round(volume[6], 6),
            height_m=None if volume is None else float(volume[7]),
            scan_strategy=None if walk["vcp"] is None else f"VCP {walk['vcp']}",
            extra={"archive_version": header[0].decode("ascii", "replace") if header
                   else None, "volume_number": header[1].decode("ascii", "replace")
                   if header else None, "chunk_number": int(chunk.group(1)) if chunk else
                   None, "records": messages.records, "messages": walk["messages"],
                   "radials": walk["radials"], "compressed": messages.compressed})


def _walk(messages: _Messages) -> dict:
    found = {"sweeps": {}, "radials": 0, "messages": 0, "site": b"", "first_us": None,
             "last_us": None, "last_status": None, "vcp": None, "volume": None}
    while not messages.at_end():
        number = found["messages"] = found["messages"] + 1
        messages.read(CTM_BYTES, f"message {number}'s CTM header")
        (size_hw, _channel, kind, _seq, _date, _ms, segments, segment) = \
            MESSAGE_HEADER.unpack(messages.read(MESSAGE_HEADER.size,
                                                f"message {number}'s header"))
        if size_hw == 0:  # padding in the metadata record
            total = FRAME_BYTES
        elif size_hw == 0xFFFF:  # the size is in the segment fields
            total = (segments << 16 | segment) + CTM_BYTES
        elif kind in (29, 31):
            total = CTM_BYTES + 2 * size_hw
        else:
            total = FRAME_BYTES
        body_bytes = total - CTM_BYTES - MESSAGE_HEADER.size
        if body_bytes < 0:
            raise ProductFormatError(f"message {number} (type {kind}) declares "
                                     f"{2 * size_hw} bytes, less than its own header",
                                     messages.offset - MESSAGE_HEADER.size)
        if kind == 31 and size_hw:
            _radial(messages.read(body_bytes, f"message {number} (a radial)"), number,
                    messages.offset - body_bytes, found)
        else:
            messages.skip(body_bytes, f"message {number} (type {kind})")
    return found


def _radial(body: bytes, number: int, offset: int, found: dict) -> None:
    if len(body) < RADIAL_HEADER.size:
        raise ProductFormatError(f"radial message {number} is shorter than its data header",
                                 offset)
    (site, time_ms, date, _azimuth_number, _azimuth, _compression, _length, _spacing,
     status, cut, _sector, elevation, _blanking, _indexing, blocks) = \
        RADIAL_HEADER.unpack_from(body)
    if not 1 <= blocks <= MAX_BLOCKS:
        raise ProductFormatError(f"radial message {number} declares {blocks} data blocks",
                                 offset + 30)
    if cut < 1 or not math.isfinite(elevation) or not -90 <= elevation <= 90:
        raise ProductFormatError(f"radial message {number}: elevation number {cut}, angle "
                                 f"{elevation}°", offset + 22)
    pointers_end = RADIAL_HEADER.size + 4 * blocks
    if len(body) < pointers_end:
        raise ProductFormatError(f"radial message {number} ends inside its block pointers",
                                 offset)
    names = []
    for pointer in struct.unpack_from(f">{blocks}I", body, RADIAL_HEADER.size):
        if not pointer:
            continue
        if not pointers_end <= pointer <= len(body) - 4:
            raise ProductFormatError(f"radial message {number} points at byte {pointer} of "
                                     f"its {len(body)}", offset + RADIAL_HEADER.size)
        tag = body[pointer:pointer + 4]
        if tag == b"RVOL" and found["volume"] is None:
            if pointer + VOLUME_BLOCK.size > len(body):
                raise ProductFormatError(f"radial message {number}'s volume block is cut "
                                         "short", offset + pointer)
            found["volume"] = VOLUME_BLOCK.unpack_from(body, pointer)
            found["vcp"] = found["volume"][14]
        elif tag[:1] == b"D":
            names.append(tag[1:].decode("ascii", "replace").strip())
    when = _time_us(date, time_ms)
    found["first_us"] = when if found["first_us"] is None else found["first_us"]
    found["last_us"] = when
    found["site"] = found["site"] or site
    found["radials"] += 1
    found["last_status"] = status & 0x0F
    angle, count, moments = found["sweeps"].get(cut, (elevation, 0, []))
    moments += [name for name in names if name not in moments]
    found["sweeps"][cut] = (angle, count + 1, moments)


@hookimpl
def obslink_register_product_formats(registry):
    registry.add_product_format(Nexrad2)
