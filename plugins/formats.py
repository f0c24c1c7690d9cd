"""The contract between obslink and a format adapter.

An adapter is fed bytes of a stream (a file from some offset, a TCP connection) and says how
many of them it fully handled; whatever it did not consume is fed again, with more, next
time. Everything it must remember between calls (a file header, a line count) goes through
``get_state``/``set_state`` as JSON-able data, which the agent commits in the same
transaction as the readings. That one shape fits text files, binary records and packet
streams alike, and makes a restart neither lose nor repeat a record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from obslink.errors import ConfigError
from obslink.readings import Reading


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A record the adapter could not turn into readings, kept with the reason."""

    position: int  # absolute byte offset of the record in the stream
    line: int | None  # 1-based line number for text formats
    reason: str
    raw: bytes


@dataclass
class Decoded:
    readings: list[Reading] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    consumed: int = 0  # bytes of the input fully handled; the rest is fed again later
    skipped_text: int = 0  # values or messages that are not observations (labels, replies)
    # Bytes to send back to the device once these readings are durable (e.g. HJ 212 CN 9014
    # replies); a source sends them only after the sink's commit has returned.
    replies: list[bytes] = field(default_factory=list)


def quarantine_span(result: Decoded, data: bytes, begin: int, end: int, start: int,
                    reason: str) -> int:
    """Quarantine ``data[begin:end]`` (the stream's bytes from ``start + begin``) and return
    ``end``, where decoding carries on: for framed formats that skip a bad frame or noise."""
    result.quarantined.append(Quarantined(start + begin, None, reason, data[begin:end]))
    return end


@dataclass(frozen=True)
class AdapterContext:
    """What an adapter knows about the station it decodes for."""

    station: str = ""
    utc_offset_minutes: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    # source field (column, code) -> (element, unit or None to keep the source's unit)
    element_map: dict[str, tuple[str, str | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class Option:
    default: Any
    help: str
    kind: type = str
    # a station's config must set it (agent check says so); `obslink parse` may leave it
    required: bool = False


class FormatAdapter:
    """Base class of format adapters. Subclass, set the class attributes, implement decode."""

    name: ClassVar[str]
    version: ClassVar[str]
    summary: ClassVar[str]
    options: ClassVar[dict[str, Option]] = {}

    def __init__(self, context: AdapterContext | None = None) -> None:
        self.context = context or AdapterContext()
        self.option_values = self.resolve_options(self.context.options)

    @classmethod
    def resolve_options(cls, given: dict[str, Any]) -> dict[str, Any]:
        """Merge ``given`` over the defaults, converting strings from the command line."""
        unknown = sorted(set(given) - set(cls.options))
        if unknown:
            known = ", ".join(sorted(cls.options)) or "none"
            raise ConfigError(
                f"format {cls.name!r} has no option {unknown[0]!r}; its options are: {known}"
            )
        values = {key: option.default for key, option in cls.options.items()}
        for key, raw in given.items():
            kind = cls.options[key].kind
            try:
                values[key] = _convert(raw, kind)
            except ValueError:
                raise ConfigError(
                    f"option {key!r} of format {cls.name!r} must be a {kind.__name__}, "
                    f"not {raw!r}"
                ) from None
        return values

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        """True when ``head`` (the first bytes of a file) looks like this format."""
        return False

    def decode(self, data: bytes, *, start: int, final: bool) -> Decoded:
        """Decode ``data``, which begins at absolute stream offset ``start``.

        Never raises for bad input: bad records are returned in ``quarantined``. When
        ``final`` is false an incomplete trailing record is left unconsumed; when true the
        stream has ended and it is decoded or quarantined.
        """
        raise NotImplementedError

    def start_stream(self, name: str) -> None:
        """Called before the first bytes of a new stream (a file's name, a peer's address),
        after ``set_state(None)``. Formats that date their records by the file name keep
        what they need of it in their state; the others ignore it."""

    def get_state(self) -> dict[str, Any]:
        return {}

    def set_state(self, state: dict[str, Any] | None) -> None:
        """Restore what ``get_state`` returned (None: start of a new stream)."""


def _convert(raw: Any, kind: type) -> Any:
    if isinstance(raw, kind):
        return raw
    if kind is bool and isinstance(raw, str):
        lowered = raw.strip().lower()
        if lowered in {"true", "yes", "1", "on"}:
            return True
        if lowered in {"false", "no", "0", "off"}:
            return False
        raise ValueError(raw)
    return kind(raw)
