"""Complete lines of a text stream, for line-based format adapters."""

from __future__ import annotations

from collections.abc import Iterator


def complete_lines(data: bytes, final: bool) -> Iterator[tuple[int, int]]:
    """(start, end) offsets of each line in ``data``, end included the newline.

    An unterminated last line is yielded only when ``final`` (the stream has ended);
    otherwise it is left for the next read.
    """
    end = len(data) if final else data.rfind(b"\n") + 1
    offset = 0
    while offset < end:
        newline = data.find(b"\n", offset, end)
        line_end = end if newline < 0 else newline + 1
        yield offset, line_end
        offset = line_end


def decode_text(raw: bytes, encoding: str = "utf-8") -> str:
    """One line as text without its line ending; undecodable bytes become U+FFFD."""
    return raw.decode(encoding, "replace").rstrip("\r\n")
