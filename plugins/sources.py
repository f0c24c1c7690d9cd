"""The contract between obslink and a source: where raw bytes come from.

A source reads bytes, hands them to a fresh format adapter restored from the committed
state, and passes what was decoded to the ingest sink, which commits readings, quarantined
records and the new source position in one transaction. Only after that commit may a source
acknowledge anything upstream. The adapters a source makes are guarded
(obslink.plugins.adapter_guard): decode() never raises; a plugin's failure comes back as
its bytes quarantined and consumed, so the source simply goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, ClassVar, Protocol

from obslink.plugins.formats import Decoded, FormatAdapter
from obslink.settings import Setting, default_of


@dataclass(frozen=True)
class SourcePosition:
    """Where a source is in one of its streams (a file, a connection)."""

    offset: int = 0
    identity: str = ""  # e.g. device:inode of a file, to notice a file replaced under its name
    state: dict[str, Any] = field(default_factory=dict)  # the adapter's get_state()


@dataclass(frozen=True)
class ChunkOrigin:
    """What a batch records about the bytes its readings came from."""

    source: str
    stream: str  # file name, peer address …
    start: int
    end: int
    sha256: bytes


class IngestSink(Protocol):
    def positions(self, source: str) -> dict[str, SourcePosition]: ...

    def commit(self, origin: ChunkOrigin, decoded: Decoded, position: SourcePosition,
               adapter: FormatAdapter) -> None: ...

    def forget(self, source: str, stream: str) -> None: ...


class Source:
    """Base class of source types. ``start`` begins work; ``stop`` ends it."""

    type: ClassVar[str]
    summary: ClassVar[str]
    # every setting the type accepts (obslink.settings): the agent's config reader checks
    # them and fills in the defaults; docs/configuration.md shows them
    declared_settings: ClassVar[tuple[Setting, ...]] = ()

    def __init__(self, name: str, settings: dict[str, Any],
                 make_adapter: Callable[[], FormatAdapter], sink: IngestSink) -> None:
        self.name = name
        self.settings = settings
        self.make_adapter = make_adapter
        self.sink = sink

    def setting(self, key: str) -> Any:
        """A setting's value, or its declared default."""
        return self.settings.get(key, default_of(self.declared_settings, key))

    @classmethod
    def check_settings(cls, settings: dict[str, Any]) -> list[tuple[str, str]]:
        """Problems that relate several of ``settings`` (each one alone is checked as
        declared), as (key, message) pairs; empty when all is well."""
        return []

    @classmethod
    def check_environment(cls, settings: dict[str, Any]) -> list[tuple[str, str]]:
        """Problems of the machine the source would run on (a directory that does not
        exist, a device that cannot be opened) as (key, message) pairs. ``agent check`` and
        ``agent run`` ask; ``parse --config`` on another machine does not."""
        return []

    def start(self, scheduler) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        pass


class PolledSource(Source):
    """A source that does one round of work every ``poll_interval`` seconds."""

    def start(self, scheduler) -> None:
        scheduler.add_job(self.poll, "interval", seconds=float(self.setting("poll_interval")),
                          id=f"source:{self.name}", max_instances=1, coalesce=True,
                          next_run_time=datetime.now(timezone.utc))

    def poll(self) -> int:
        """Read what is new; return the number of readings committed."""
        raise NotImplementedError
