"""A directory a radar gateway writes products into (volumes, tilts, real-time chunks):
each file, once it has not changed for ``settle_seconds``, is read by its product format for
its metadata and then copied into the product outbox whole (docs/products.md). A file that
is not a whole product is quarantined with the reason and not read again until it changes.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from pathlib import Path
from stat import S_ISREG

from obslink.agent.product_outbox import ProductOutbox
from obslink.plugins.products import ProductFormatError

log = logging.getLogger(__name__)


class ProductSource:
    type = "products"  # named in log lines as source types are

    def __init__(self, name: str, settings: dict, format_class, outbox: ProductOutbox,
                 wake) -> None:
        self.name, self.settings, self.format_class = name, settings, format_class
        self.outbox, self.wake = outbox, wake
        self._missing_reported = False
        self.taken = self.quarantined = 0

    def start(self, scheduler) -> None:
        scheduler.add_job(self.poll, "interval", seconds=float(self.settings["poll_interval"]),
                          id=f"products:{self.name}", max_instances=1, coalesce=True,
                          next_run_time=datetime.now(timezone.utc))

    def stop(self) -> None:
        pass

    def poll(self) -> int:
        """Take in every settled product not taken yet; returns how many."""
        directory = Path(self.settings["path"])
        if not directory.is_dir():
            if not self._missing_reported:
                log.warning("products %s: directory %s does not exist; waiting for it",
                            self.name, directory)
                self._missing_reported = True
            return 0
        self._missing_reported = False
        files = []
        for path in directory.glob(self.settings["pattern"]):
            try:
                stat = path.stat()
            except OSError:
                continue
            if S_ISREG(stat.st_mode):
                files.append((stat.st_mtime_ns, path.name, path, stat))
        taken = 0
        for _mtime, _name, path, stat in sorted(files):
            try:
                taken += self._take(path, stat)
            except Exception:  # one product's trouble never stops the others
                log.exception("products %s: could not take %s in; trying again at the next "
                              "poll", self.name, path)
        self.outbox.forget_missing(self.name, {name for _m, name, _p, _s in files})
        return taken

    def _take(self, path: Path, stat) -> int:
        identity = _identity(stat)
        if self.outbox.taken(self.name, path.name, identity):
            return 0
        if time.time() - stat.st_mtime < float(self.settings["settle_seconds"]):
            return 0  # still being written
        metadata = None

        def read_metadata():
            nonlocal metadata
            with open(path, "rb") as stream:
                metadata = self.format_class().read_metadata(stream, path.name)
            return metadata

        def unchanged() -> bool:
            return _identity(path.stat()) == identity

        try:  # the outbox copies the file while its format reads it
            number = self.outbox.take_in(self.name, path, identity, read_metadata,
                                         self.format_class.name, self.format_class.version,
                                         unchanged)
        except ProductFormatError as error:
            if unchanged():
                self.outbox.quarantine(self.name, path.name, identity, str(error))
                self.quarantined += 1
                log.warning("products %s: %s quarantined: %s", self.name, path, error)
            return 0
        if number is None:
            return 0
        self.taken += 1
        log.info("products %s: took %s in as product %d (%s %s, %d bytes)", self.name,
                 path.name, number, metadata.site, metadata.kind, stat.st_size)
        self.wake.set()
        return 1


def _identity(stat) -> str:
    return f"{stat.st_dev}:{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"
