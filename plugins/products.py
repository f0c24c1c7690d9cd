"""The contract between obslink and a product format.

Large binary products (radar volume scans, single tilts, real-time chunks) travel whole, as
the bytes the hardware wrote; nothing in them is turned into readings. A product format only
reads a product's metadata (site, time, scan strategy, elevations, moments) and says whether
the product is whole, walking it once as a stream so that a 200 MB volume is never held in
memory. Bad or truncated products raise :class:`ProductFormatError` with the reason and the
byte where it was found; the agent quarantines them, ``obslink parse`` prints the reason.
"""

from __future__ import annotations

import bz2
from dataclasses import asdict, dataclass, field
from typing import Any, BinaryIO, ClassVar

from obslink.errors import FormatError

BZIP2_MAGIC = b"BZh"
READ_PIECE = 1 << 16  # compressed bytes handed to the decompressor at a time
# decompressed bytes taken from it at a time: bzip2 expands a run of one byte ~45-fold per
# pass, so the output of one piece is bounded explicitly
OUTPUT_PIECE = 1 << 20


class ProductFormatError(FormatError):
    """A product is not what its format says: ``reason`` and the ``offset`` (in the bytes
    the format reads, i.e. after decompression where the file is compressed)."""

    def __init__(self, reason: str, offset: int | None = None) -> None:
        self.reason, self.offset = reason, offset
        super().__init__(reason if offset is None else f"byte {offset:,}: {reason}")


@dataclass(frozen=True)
class Sweep:
    """One elevation cut as the product describes it."""

    number: int  # 1-based, as the product numbers it
    elevation_deg: float
    radials: int  # radials of this cut present in the product
    moments: tuple[str, ...]  # names of the moments its radials carry (REF, VEL, …)


@dataclass(frozen=True)
class ProductMetadata:
    """What obslink keeps of a product besides its bytes (docs/formats.md, per format)."""

    format: str
    site: str  # the site code the product carries (CINRAD site code, NEXRAD ICAO)
    start_us: int  # scan or volume start, UTC µs
    end_us: int | None  # time of the last radial present, UTC µs
    complete: bool  # True: the product ends where its format says a product ends
    kind: str  # "volume", "tilt" or a real-time chunk's "start", "intermediate", "end"
    sweeps: tuple[Sweep, ...] = ()
    site_name: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    height_m: float | None = None
    scan_strategy: str | None = None  # CINRAD task name, NEXRAD "VCP 212"
    extra: dict[str, Any] = field(default_factory=dict)  # format-specific, JSON-able

    @property
    def elevations(self) -> tuple[float, ...]:
        return tuple(sweep.elevation_deg for sweep in self.sweeps)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ProductFormat:
    """Base class of product formats. Subclass, set the class attributes, implement
    ``read_metadata``; register with ``registry.add_product_format``."""

    name: ClassVar[str]
    version: ClassVar[str]
    summary: ClassVar[str]

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        """True when ``head`` (the first bytes of a file, at most 64) looks like this
        format (after bzip2 decompression where the format is usually compressed)."""
        return False

    def read_metadata(self, stream: BinaryIO, name: str = "") -> ProductMetadata:
        """Read the whole product from ``stream`` once, a piece at a time, and return its
        metadata; raise ProductFormatError for a bad or truncated product. ``name`` is
        the file's name (real-time feeds name the chunk's place in the volume)."""
        raise NotImplementedError


class PieceReader:
    """Exact reads over bytes that arrive in pieces (``_more`` returns the next piece, or
    None at the end): every read that comes up short raises ProductFormatError naming what
    was being read and where. ``offset`` counts the bytes read so far."""

    def __init__(self) -> None:
        self.offset = 0
        self._buffer = bytearray()

    def _more(self) -> bytes | None:
        raise NotImplementedError

    def _fill(self, wanted: int) -> None:
        while len(self._buffer) < wanted:
            piece = self._more()
            if piece is None:
                return
            self._buffer += piece

    def read(self, size: int, what: str) -> bytes:
        self._have(size, what)
        piece = bytes(self._buffer[:size])
        del self._buffer[:size]
        self.offset += size
        return piece

    def skip(self, size: int, what: str) -> None:
        """As read, without making bytes of what is skipped (a radial's bins)."""
        while size > 0:
            step = min(size, OUTPUT_PIECE)
            self._have(step, what)
            del self._buffer[:step]
            self.offset += step
            size -= step

    def _have(self, size: int, what: str) -> None:
        self._fill(size)
        if len(self._buffer) < size:
            raise ProductFormatError(
                f"truncated: {what} needs {size:,} bytes, the product ends after "
                f"{len(self._buffer):,}", self.offset)

    def at_end(self) -> bool:
        self._fill(1)
        return not self._buffer


class Bzip2Pieces:
    """One bzip2 stream's decompressed bytes, a bounded piece at a time, from ``read``
    (a function returning up to n compressed bytes, b"" at the end)."""

    def __init__(self, read, offset_of) -> None:
        self._read = read
        self._offset_of = offset_of  # where decompressed output stands, for errors
        self._decompressor = bz2.BZ2Decompressor()

    def next(self) -> bytes | None:
        """The next piece of output; None once the stream's end marker is passed.
        ProductFormatError when the compressed bytes end early or are damaged."""
        while not self._decompressor.eof:
            piece = self._read(READ_PIECE) if self._decompressor.needs_input else b""
            if self._decompressor.needs_input and not piece:
                raise ProductFormatError("truncated: the bzip2-compressed data ends before "
                                         "its end marker (the file was cut short, or was "
                                         "still being written)", self._offset_of())
            try:
                output = self._decompressor.decompress(piece, OUTPUT_PIECE)
            except (OSError, EOFError, ValueError) as exc:
                raise ProductFormatError(f"the bzip2 compression is damaged ({exc})",
                                         self._offset_of()) from None
            if output:
                return output
        return None

    @property
    def unused(self) -> bytes:
        return self._decompressor.unused_data


class ProductStream(PieceReader):
    """A product file's bytes, decompressed when the file is one bzip2 stream."""

    def __init__(self, stream: BinaryIO) -> None:
        super().__init__()
        self._stream = stream
        self._head = stream.read(len(BZIP2_MAGIC))
        self.compressed = self._head == BZIP2_MAGIC
        self._bzip2 = Bzip2Pieces(self._raw, lambda: self.offset + len(self._buffer)) \
            if self.compressed else None

    def _raw(self, size: int) -> bytes:
        head, self._head = self._head, b""
        return head + self._stream.read(size - len(head)) if head else self._stream.read(size)

    def _more(self) -> bytes | None:
        if self._bzip2 is None:
            return self._raw(READ_PIECE) or None
        piece = self._bzip2.next()
        if piece is None and (self._bzip2.unused or self._raw(1)):
            raise ProductFormatError("bytes follow the end of the bzip2 stream",
                                     self.offset + len(self._buffer))
        return piece


def product_head(stream: BinaryIO, size: int = 64) -> bytes:
    """The first ``size`` bytes of a product, decompressed where it is bzip2 (for
    ``sniff``); b"" where even that much cannot be decompressed."""
    try:
        reader = ProductStream(stream)
        reader._fill(size)
        return bytes(reader._buffer[:size])
    except ProductFormatError:
        return b""


def sniff_product(stream: BinaryIO, formats) -> list[type[ProductFormat]]:
    """The product formats (of ``formats``, name -> class) that recognise the stream's
    first bytes."""
    head = product_head(stream)
    return [cls for cls in formats.values() if cls.sniff(head)]
