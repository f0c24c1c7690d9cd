"""A directory a logger writes files into: files grow, rotate, and are sometimes rewritten.

Each file's read offset and adapter state are committed with the readings. A file whose
identity (device, inode) changes or that shrinks below the committed offset was replaced:
it is read again from the start, and the event is logged. A trailing partial record waits
until the file has not changed for ``settle_seconds``; then it is decoded or quarantined.
A record longer than ``max_read_bytes`` (a large BUFR message) gets a read window doubled
until it fits, up to ``MAX_WINDOW_FACTOR`` times; beyond that, once the file has settled,
the window is handed to the adapter as the end of the stream, which quarantines it, so
one oversized record cannot stop the file from being read.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path
from stat import S_ISREG

from obslink.plugins import hookimpl
from obslink.plugins.sources import ChunkOrigin, PolledSource, SourcePosition
from obslink.settings import REQUIRED, Setting

log = logging.getLogger(__name__)

MAX_WINDOW_FACTOR = 16  # the read window grows to 16 x max_read_bytes for one long record


class DirectorySource(PolledSource):
    type = "directory"
    summary = "files a logger writes into a directory (appended, rotated, rewritten)"
    declared_settings = (
        Setting("path", REQUIRED, "directory the logger writes files into; it must exist when "
                "the agent starts, unless `wait_for_path`", kind="path",
                required="the directory the logger writes its files to"),
        Setting("wait_for_path", False, "`true`: the directory may appear after the agent "
                "starts (a mount, a card inserted later); until then the source waits and "
                "logs it once", kind="bool"),
        Setting("pattern", "*", "glob of the files to read, e.g. `*.dat`"),
        Setting("poll_interval", 5.0, "seconds between looks at the directory", kind="number"),
        Setting("settle_seconds", 300.0, "a trailing line without end-of-line is read once "
                "the file has not changed this long", kind="number"),
        Setting("max_read_bytes", 4 * 1024 * 1024, "bytes read per step (bounds memory on "
                "large files); a longer record gets a window doubled up to 16 times, and a "
                "settled file with no record end within that is quarantined there rather than "
                "stalling", kind="int"),
    )

    @classmethod
    def check_environment(cls, settings):
        path = Path(settings["path"])
        if path.is_dir():
            if not os.access(path, os.R_OK | os.X_OK):
                return [("path", f"{path} cannot be read by this user; give it read access "
                                 "(the agent only reads the logger's files)")]
            return []
        if settings.get("wait_for_path", False):
            return []  # a mount that appears later: the source waits for it
        what = "is not a directory" if path.exists() else "does not exist"
        return [("path", f"{path} {what}; correct the path, or set wait_for_path = true if "
                         "it appears later (a mount)")]

    _missing_reported = False

    def __init__(self, name, settings, make_adapter, sink) -> None:
        super().__init__(name, settings, make_adapter, sink)
        self._unreadable: set[str] = set()  # files whose read failure is logged already

    def poll(self) -> int:
        directory = Path(self.settings["path"])
        if not directory.is_dir():
            if not self._missing_reported:
                log.warning("source %s: directory %s does not exist (%s); waiting for it",
                            self.name, directory, "wait_for_path = true" if self.setting(
                                "wait_for_path") else "it was there when the agent started")
                self._missing_reported = True
            return 0
        self._missing_reported = False
        positions = self.sink.positions(self.name)
        files = []  # (path, stat) of each regular file, one stat per file per poll
        for path in directory.glob(self.setting("pattern")):
            try:
                stat = path.stat()
            except OSError:
                continue  # removed since the listing
            if S_ISREG(stat.st_mode):
                files.append((path, stat))
        files.sort(key=lambda item: (item[1].st_mtime, item[0].name))
        identities = {path.name: _identity(stat) for path, stat in files}
        present = set(identities)
        # Rotation renames a file (same inode) and starts a new one under the old name: a
        # position follows its file's identity, so the renamed file is not read again.
        moved = {position.identity: position for stream, position in positions.items()
                 if identities.get(stream) != position.identity}
        committed = 0
        for path, stat in files:
            position = positions.get(path.name)
            if position is None or position.identity != identities[path.name]:
                position = moved.pop(identities[path.name], None)
            try:
                committed += self._read_file(path, stat, position)
            except OSError as exc:  # this file only: the others are still read
                if path.name not in self._unreadable:
                    log.warning("source %s: cannot read %s (%s); trying it again at every "
                                "poll", self.name, path.name, exc.strerror or exc)
                    self._unreadable.add(path.name)
            else:
                self._unreadable.discard(path.name)
        for stream in set(positions) - present:
            self.sink.forget(self.name, stream)  # gone, or followed under its new name
        return committed

    def _read_file(self, path: Path, stat: os.stat_result,
                   position: SourcePosition | None) -> int:
        identity = _identity(stat)
        if position is not None and (position.identity != identity
                                     or stat.st_size < position.offset):
            log.warning("source %s: %s was replaced or truncated (offset %d, size %d); "
                        "reading it again from the start", self.name, path.name,
                        position.offset, stat.st_size)
            position = None
        position = position or SourcePosition(0, identity, {})
        if stat.st_size == position.offset:
            return 0
        settled = time.time() - stat.st_mtime >= self.setting("settle_seconds")
        committed = 0
        try:
            stream = open(path, "rb")
        except FileNotFoundError:
            return 0  # rotated away since the listing; the next poll finds it
        window = int(self.setting("max_read_bytes"))
        largest = MAX_WINDOW_FACTOR * window
        with stream:
            while True:
                stream.seek(position.offset)
                data = stream.read(window)
                if not data:
                    break
                full = len(data) == window
                final = settled and not full
                adapter, decoded = self._decode(path.name, position, data, final)
                if decoded.consumed == 0 and full:
                    if window < largest:
                        window *= 2  # a record longer than the window: look further
                        continue
                    if settled:  # no record ends within the largest window: quarantined
                        adapter, decoded = self._decode(path.name, position, data, True)
                if decoded.consumed == 0:
                    break  # an incomplete record; more bytes will come
                window = int(self.setting("max_read_bytes"))
                chunk = data[:decoded.consumed]
                origin = ChunkOrigin(self.name, path.name, position.offset,
                                     position.offset + decoded.consumed,
                                     hashlib.sha256(chunk).digest())
                position = SourcePosition(origin.end, identity, adapter.get_state())
                self.sink.commit(origin, decoded, position, adapter)
                committed += len(decoded.readings)
        return committed

    def _decode(self, stream_name: str, position: SourcePosition, data: bytes, final: bool):
        """A fresh adapter in the committed state decodes ``data``: (adapter, Decoded)."""
        adapter = self.make_adapter()
        adapter.set_state(position.state)
        if position.offset == 0:
            adapter.start_stream(stream_name)
        return adapter, adapter.decode(data, start=position.offset, final=final)


def _identity(stat: os.stat_result) -> str:
    """Device and inode: the same file under any name."""
    return f"{stat.st_dev}:{stat.st_ino}"


@hookimpl
def obslink_register_sources(registry):
    registry.add_source(DirectorySource)
