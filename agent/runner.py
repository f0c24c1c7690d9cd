"""``obslink agent run``: sources feed the outbox, the uplink drains it."""

from __future__ import annotations

import logging
import signal
import sqlite3
import threading
from dataclasses import replace
from functools import partial
from typing import NamedTuple

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from obslink.agent.config import AgentConfig
from obslink.agent.clock import ClockState
from obslink.agent.outbox import DISK_FULL_EVICT, Outbox, OutboxLimits
from obslink.agent.uplink import Uplink
from obslink.errors import ObslinkError
from obslink.keys import load_private_key
from obslink.plugins.adapter_guard import guarded_factory
from obslink.plugins.formats import Decoded, FormatAdapter
from obslink.plugins.qc_runner import QCRunner
from obslink.plugins.registry import PluginRegistry
from obslink.plugins.sources import ChunkOrigin, Source, SourcePosition
from obslink.plugins.units import as_stored
from obslink.readings import now_us

log = logging.getLogger(__name__)

class OutboxSink:
    """What sources commit into: QC, the outbox, and a nudge to the uplink."""

    def __init__(self, outbox: Outbox, max_batch_readings: int, wake: threading.Event,
                 qc: QCRunner | None = None, limits: OutboxLimits | None = None,
                 clock=None):
        self.outbox = outbox
        self.max_batch_readings = max_batch_readings
        self.wake = wake
        self.limits = limits
        self.clock = clock  # () -> the clock state every batch carries
        self.qc = qc = qc or QCRunner([])
        qc.load_state(outbox.qc_state())
        # QC history advances in commit order: one source's commit at a time.
        self._lock = threading.Lock()

    def positions(self, source: str) -> dict[str, SourcePosition]:
        return self.outbox.positions(source)

    def commit(self, origin: ChunkOrigin, decoded: Decoded, position: SourcePosition,
               adapter: FormatAdapter) -> list[int]:
        """QC the readings and commit them with the source position; returns the sequence
        numbers of the batches made."""
        with self._lock:
            decoded.readings = as_stored(decoded.readings)
            qc = self.qc.run(decoded.readings, origin.source)
            ingest = partial(self.outbox.ingest, origin, decoded, position, adapter,
                             self.max_batch_readings, clock=self.clock() if self.clock else None,
                             qc=qc, qc_checks=self.qc.names, qc_state=self.qc.pending_state(),
                             limits=self.limits)
            try:
                try:
                    created = ingest()
                except sqlite3.OperationalError as exc:
                    if exc.sqlite_errorcode != sqlite3.SQLITE_FULL:
                        raise
                    # Disk full: make room from the backlog (reported as a gap) and keep the
                    # newest data; if even that fails the source keeps its position and its
                    # bytes, and tries again at its next poll.
                    policy = self.limits.policy if self.limits else "oldest"
                    gaps = self.outbox.evict_for_space(DISK_FULL_EVICT, policy, "disk-full")
                    log.error("outbox %s: disk full; evicted %d readings of backlog (reported "
                              "to the centre as a gap) to keep the newest",
                              self.outbox.path, sum(g.readings for g in gaps))
                    created = ingest()
            except BaseException:
                self.qc.rollback_state()
                raise
            self.qc.commit_state()
        for q in decoded.quarantined:
            log.warning("source %s: %s %s quarantined: %s", origin.source, origin.stream,
                        f"byte {q.position}", q.reason)
        if created:
            self.wake.set()
        return created

    def forget(self, source: str, stream: str) -> None:
        self.outbox.forget(source, stream)


def guarded(source: Source, poll):
    """Run a source plugin's poll; a plugin failure is logged with its name, never fatal."""

    def run():
        try:
            return poll()
        except ObslinkError as exc:
            log.error("source %s (%s): %s", source.name, source.type, exc)
        except Exception:
            log.exception("source %s (%s plugin %s) failed; it will be polled again",
                          source.name, source.type, type(source).__module__)
    return run


class Products(NamedTuple):
    outbox: object  # ProductOutbox, imported only where a station has products
    uplink: object  # ProductUplink
    sources: list


def _products(config: AgentConfig, registry: PluginRegistry, uplink: Uplink
              ) -> Products | None:
    """The station's products (docs/products.md) where the config has them or the product
    outbox still holds some; else None."""
    directory = config.product_directory
    if not config.products and not (directory / "products.db").exists():
        return None
    from obslink.agent.product_outbox import ProductOutbox
    from obslink.agent.product_source import ProductSource
    from obslink.agent.product_uplink import ProductUplink
    from obslink.large_buffers import keep_large_buffers_on_the_heap

    keep_large_buffers_on_the_heap()  # chunks are copied a MiB at a time

    product_outbox = ProductOutbox(directory, config.station, None,
                                   config.product_max_bytes, config.product_chunk_bytes,
                                   config.synchronous)
    product_uplink = ProductUplink(config, product_outbox, lambda: (uplink.key, uplink.kid),
                                   uplink.live_in_flight)
    sources = [ProductSource(source.name, source.settings,
                             registry.product_format(source.format), product_outbox,
                             product_uplink.wake) for source in config.products]
    for source in sources:
        source.poll = guarded(source, source.poll)
    return Products(product_outbox, product_uplink, sources)


def run_agent(config: AgentConfig, registry: PluginRegistry,
              stop: threading.Event | None = None) -> int:
    stop = stop or threading.Event()
    key = load_private_key(config.private_key)
    outbox = Outbox(config.outbox_path, config.station, config.synchronous)
    uplink = Uplink(config, outbox, key)
    clock = ClockState()

    def clock_state() -> dict:
        state = clock.read()
        if not state["synced"] and uplink.collector_offset_ms is not None:
            # no disciplined clock: the collector's clock, as its acks show it, is the
            # best estimate there is
            state.update(offset_ms=uplink.collector_offset_ms, offset_source="collector")
        return state

    def present() -> int | None:
        """The present as well as the gateway knows it (the time check's reference)."""
        state = clock_state()
        if state["synced"]:
            return now_us()
        if state.get("offset_source") == "collector":
            return now_us() + int(state["offset_ms"] * 1000)
        return None  # a clock nobody disciplines, and no ack yet: times are not judged

    qc_settings = replace(config.qc, now=present)
    sink = OutboxSink(outbox, config.max_batch_readings, uplink.wake,
                      QCRunner.from_registry(registry, qc_settings), config.limits,
                      clock_state)
    sources = []
    for source_config in config.sources:
        adapter_class = registry.format(source_config.format)
        source = registry.source(source_config.type)(
            source_config.name, source_config.settings,
            guarded_factory(adapter_class, source_config.adapter_context), sink)
        if hasattr(source, "poll"):
            source.poll = guarded(source, source.poll)
        sources.append(source)

    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # one line per poll is noise
    # a poll still reading a long file when the next is due is skipped: normal, not news
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
    scheduler = BackgroundScheduler(timezone="UTC",
                                    executors={"default": ThreadPoolExecutor(4)})
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stats = outbox.stats()
    log.info("agent for station %s (network %s) starting: outbox %s, epoch %s, %d batches "
             "waiting", config.station, config.network, config.outbox_path, stats.epoch,
             stats.batches)
    metrics = None
    if config.metrics_listen:
        from obslink.agent.metrics import serve_metrics

        metrics = serve_metrics(config)
    products = _products(config, registry, uplink)
    uplink.start()
    for source in sources:
        source.start(scheduler)
    if products is not None:
        products.uplink.start()
        for source in products.sources:
            source.start(scheduler)
    scheduler.start()
    try:
        while not stop.wait(timeout=1):  # a timeout keeps the main thread taking signals
            pass
    finally:
        log.info("agent stopping")
        scheduler.shutdown(wait=True)
        for source in sources:
            source.stop()
        uplink.stop()
        if products is not None:
            products.uplink.stop()
            products.outbox.close()
        if metrics is not None:
            metrics.shutdown()
        outbox.close()
    return 0
