"""``obslink collector serve``: take batches from the broker, verify, commit, acknowledge.

Messages are taken from an MQTT 5 shared subscription (so several workers can share the
load), verified, committed in groups in one catalog transaction, and only then acknowledged
on each station's ack topic. Messages an agent marks as live (MQTT 5 user property
``obslink-lane``) are taken before backlog messages, so a fleet draining a day's backlog
does not hold up the minute that just happened. A group's commit (the wait for the disk) and
its acks run on a second thread while the next group is verified, and the MQTT connection
runs in a child process (server/mqtt_link.py) so that it does not take turns with them for
the interpreter.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from itertools import chain
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from obslink import wire
from obslink.readings import now_us
from obslink.plugins.qc_runner import QCRunner
from obslink.errors import TransportError
from obslink.faults import fault_point
from obslink.keys import key_id
from obslink.logs import current_format
from obslink.mqtt_tcp import read_password
from obslink.server.catalog import (AcceptedBatch, AcceptedGap, AcceptedKey, Catalog,
                                    Refusal)
from obslink.server.centre_qc import CentreQC, centre_qc_runner
from obslink.server.monitoring.watch import DEFAULT_WATCH_EVERY_S, Watch
from obslink.server.mqtt_link import CONNECTED, MESSAGE, LinkSettings, MqttLink, is_live
from obslink.server.product_process import ProductProcess, ProductSettings
from obslink.server.product_store import default_product_store
from obslink.server.replay_window import ReplayWindow
from obslink.server.station_keys import StationKeys
from obslink.server.verify import verify_message
from obslink.server.verify_v2 import Contexts

log = logging.getLogger(__name__)

# One transaction commits a group: every live message queued (up to MAX_GROUP), then backlog
# messages up to about the catalog's group_bytes (server/catalog/interface.py: 64 KiB on
# SQLite, more where a group's fixed cost is higher). A live message waits for one group
# at most.
MAX_GROUP = 32
# A v2 message carries as many readings as a v1 message many times its size (4.0 against
# 79.5 bytes a reading for an outage's backlog, 2.4 against 22.3 from a day's file:
# bench/wire_bytes.py), so its bytes count this many times towards a group's bytes: otherwise a
# group of v2 bundles held 8 times the readings of a v1 group, and a live minute waited for
# it (bench/backlog_drain.py: live p50 during the drain 202 ms on v2 against 29 ms on v1).
V2_GROUP_WEIGHT = 16
DECRYPTION_KEY_FILE = "collector-x25519.key"  # beside the catalog unless told otherwise
SIGNING_KEY_FILE = "collector.key"  # Ed25519: enrolment answers and the log's tree heads
DEFAULT_TREE_HEAD_INTERVAL_S = 60.0
DEFAULT_KEY_GRACE_S = 24 * 3600  # a rotated-out key signs in-flight batches this long


def unstorable(item: AcceptedBatch | AcceptedGap | AcceptedKey, error: Exception) -> Refusal:
    cannot = f"the catalog cannot store it ({type(error).__name__}: {error})"
    if isinstance(item, AcceptedBatch):
        batch = item.batch
        detail = (f"{cannot}; the batch stays parked in the station's outbox; the collector's "
                  "operator has the error in the collector's log")
        return Refusal(item.topic, "unstorable", detail, item.payload, item.received_at,
                       station=batch.station, key_id=item.key_id, epoch=batch.epoch,
                       seq=batch.seq, verified=True)
    # a gap report or key announcement is not acknowledged: its station sends it again
    detail = (f"{cannot}; not acknowledged, so the station sends it again; the collector's "
              "operator has the error in the collector's log")
    station = item.gap.station if isinstance(item, AcceptedGap) else item.rotation.station
    signer = item.key_id if isinstance(item, AcceptedGap) else item.signer
    return Refusal(item.topic, "unstorable", detail, item.payload, item.received_at,
                   station=station, key_id=signer)


def _describe(item, parts) -> str:
    """What a log line names, never the whole body."""
    if isinstance(item, AcceptedBatch):
        return f"batch {item.batch.station}/{item.batch.epoch}/{item.batch.seq} on {item.topic}"
    if isinstance(item, AcceptedGap):
        return f"gap report {item.gap.id} on {item.topic}"
    if isinstance(item, AcceptedKey):
        return f"key announcement {item.rotation.key_id} on {item.topic}"
    return f"the group's {len(parts[3])} refusal(s)"


class Collector:
    def __init__(self, catalog: Catalog, broker_host: str, broker_port: int,
                 group: str = "collectors", network: str = "+",
                 client_id: str | None = None, qc: QCRunner | None = None,
                 key_grace_s: float = DEFAULT_KEY_GRACE_S,
                 decryption_key: X25519PrivateKey | None = None,
                 tls: bool = False, ca_file: str | None = None,
                 username: str | None = None, password_file: str | None = None,
                 signing_key: Ed25519PrivateKey | None = None,
                 tree_head_interval: float = DEFAULT_TREE_HEAD_INTERVAL_S,
                 watch_every: float | None = DEFAULT_WATCH_EVERY_S,
                 metrics_listen: str | None = None,
                 product_store: Path | None = None, protocol: int = 2) -> None:
        self.catalog = catalog
        # the highest data protocol the acks announce (docs/protocol.md, "Version 2"); both
        # are always accepted, but a group's workers announce v2 only when all take it
        self.protocol = protocol
        # radar volumes and other large products: kept whole in this directory tree
        # (docs/products.md), received by a process of their own
        # (looked for when the collector runs: a catalog by URL must name it)
        self.product_store = Path(product_store) if product_store else None
        self.products: ProductProcess | None = None
        # Prometheus metrics at HOST:PORT while running (docs/monitoring.md)
        self.metrics_listen = metrics_listen
        self.metrics = None
        # alarms are evaluated every watch_every seconds while running (None: never)
        self.watch_every = watch_every
        self.watch: Watch | None = None
        # signs the transparency log's tree head every tree_head_interval seconds while the
        # log grows, and when the collector stops (docs/provenance.md)
        self.signing_key = signing_key
        self.tree_head_interval = tree_head_interval
        self._next_head = time.monotonic() + tree_head_interval
        self._signed_size: int | None = None
        if signing_key is not None:
            catalog.committed_by = key_id(signing_key.public_key())
        self.decryption_key = decryption_key  # opens messages stations sealed to it
        self.window = ReplayWindow(catalog)
        self.key_grace_s = key_grace_s  # how long a replaced key stays valid
        # Readings that arrive unchecked are checked here, so coverage at the centre is
        # complete whatever the sender ran (docs/qc.md).
        self.qc = CentreQC(qc if qc is not None else centre_qc_runner())
        self.qc.runner.load_state(catalog.qc_state())
        # keys are looked up on a connection of their own: the catalog's may be committing
        self._lookups = catalog.reader()
        # one group at a time is written and committed here while the main thread
        # verifies the next
        self._committer = ThreadPoolExecutor(1, thread_name_prefix="catalog-commit")
        self._pending: tuple[list, Future] | None = None  # the group being committed
        self.link_settings = LinkSettings(
            broker_host, broker_port, client_id or f"obslink-collector-{group}",
            tuple(wire.collector_subscription(group, network, kind)
                  for kind in ("data", "gap", "key"))
            + (wire.collector_subscription(group, network, "data", wire.TOPIC_ROOT_V2),),
            tls, ca_file, username, str(password_file) if password_file else None,
            logging.getLogger().getEffectiveLevel(), current_format())
        self.product_link = replace(
            self.link_settings, client_id=f"{self.link_settings.client_id}-products",
            subscriptions=(wire.collector_subscription(group, network, "product"),))
        if username is not None:
            read_password(password_file)  # an unreadable file is reported here, not later
        self._link: MqttLink | None = None  # the MQTT connection's process, while running
        # live data first: a backlog drain must not sit in front of the newest minute
        self.live: queue.Queue[tuple[str, bytes, int]] = queue.Queue()
        self.messages: queue.Queue[tuple[str, bytes, int]] = queue.Queue()
        self.arrived = threading.Semaphore(0)  # one release per message queued
        self.connected = threading.Event()
        self._keys = StationKeys(self._lookups)
        self._contexts = Contexts(self._lookups.batch_context)  # v2 batches' contexts
        self.committed = self.duplicates = self.refused = 0
        self.stopping = False

    # -- messages from the broker --------------------------------------------------------------

    def _on_message(self, client, userdata, message) -> None:
        """A paho message, as a broker would hand it over (tests and the bench use it)."""
        self._arrive(message.topic, message.payload, is_live(message), now_us())

    def _arrive(self, topic: str, payload: bytes, live: bool, received_at: int) -> None:
        (self.live if live else self.messages).put((topic, payload, received_at))
        self.arrived.release()

    def _receive(self, link: MqttLink) -> None:
        """Thread: queue what the link process forwards until it ends."""
        try:
            while True:
                event = link.receive()
                if event[0] == MESSAGE:
                    self._arrive(*event[1:])
                elif event[0] == CONNECTED:
                    self.connected.set()
                else:
                    self.connected.clear()
                    if not self.stopping:
                        log.warning("collector disconnected from broker (%s); reconnecting",
                                    event[1])
        except (EOFError, OSError):  # the link has ended: run() reports it
            self.connected.clear()

    # -- work ----------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        store = self.product_store or default_product_store(self.catalog.location)
        # The receiving thread must get the interpreter soon after a live message arrives,
        # not after the verifying thread's default 5 ms turn.
        sys.setswitchinterval(0.001)
        self._link = MqttLink(self.link_settings)
        self.products = ProductProcess(ProductSettings(
            self.product_link, self.catalog.location, str(store),
            self.decryption_key.private_bytes_raw() if self.decryption_key else None,
            self.catalog.committed_by))
        receiver = threading.Thread(target=self._receive, args=(self._link,),
                                    name="mqtt-link-receiver", daemon=True)
        receiver.start()
        if self.watch_every:
            self.watch = Watch(self.catalog, self._publish_or_raise, self.watch_every)
            self.watch.start()
        metrics_server = self._serve_metrics() if self.metrics_listen else None
        try:
            while not stop.is_set():
                if not self._link.process.is_alive():
                    raise TransportError(
                        f"the collector's MQTT process ended (exit code "
                        f"{self._link.process.exitcode}); its log lines above say why. "
                        "Restart the collector: the stations send every batch not "
                        "acknowledged again once one runs")
                if not self.products.alive():
                    raise TransportError(
                        f"the collector's product process ended (exit code "
                        f"{self.products.process.exitcode}); its log lines above say why. "
                        "Restart the collector: the stations send every product chunk not "
                        "acknowledged again once one runs")
                group = self._take_group(timeout=0.5)
                if group:
                    self.process(group)
                else:
                    self.flush()  # nothing to overlap with: finish the last group's commit
                if time.monotonic() >= self._next_head:
                    self.flush()
                    self.sign_tree_head()
                if self.watch is not None and self.watch.due():
                    self.flush()
                    self.run_watch()
        finally:
            self.flush()
            if self.watch is not None:
                self.watch.stop()
            if metrics_server is not None:
                metrics_server.shutdown()
            try:
                self.sign_tree_head()
            except Exception:  # stopping goes on: the link and threads must still close
                log.exception("could not sign the log's tree head while stopping; the next "
                              "collector to run signs one")
            self._committer.shutdown()
            self.products.close()
            self._lookups.close()
            self.stopping = True
            self._link.close()
            receiver.join(5)
            log.info("collector stopped: %d batches committed, %d duplicates acknowledged "
                     "again, %d refused (%d of them late copies of stored batches)",
                     self.committed, self.duplicates, self.refused, self.window.late_copies)

    def sign_tree_head(self) -> None:
        """Sign the log's tree head if it grew since the last one this collector signed."""
        self._next_head = time.monotonic() + self.tree_head_interval
        if self.signing_key is None:
            return
        try:
            if self.catalog.tree_size() != self._signed_size:
                head = self.catalog.sign_tree_head(self.signing_key)
                self._signed_size = head["size"]
                log.debug("signed tree head: %d batches, root %s", head["size"],
                          head["root"].hex())
        except Exception as exc:  # the next interval tries again; nothing is lost meanwhile
            if not self.catalog.is_transient(exc):
                raise
            log.warning("could not sign the log's tree head now (%s); trying again in %.0f s",
                        exc, self.tree_head_interval)

    def _serve_metrics(self):
        from prometheus_client import start_http_server

        from obslink.server.monitoring.metrics import collector_registry

        registry, self.metrics = collector_registry(self.catalog.reader)
        host, _, port = self.metrics_listen.rpartition(":")
        server, _thread = start_http_server(int(port), host.strip("[]"), registry)
        log.info("collector metrics at http://%s/metrics", self.metrics_listen)
        return server

    def run_watch(self) -> None:
        """Evaluate the alarm rules; a database that is busy now is tried next time."""
        try:
            self.watch.run_once()
        except Exception as exc:
            if not self.catalog.is_transient(exc):
                raise
            log.warning("could not evaluate the alarm rules now (%s); trying again in %.0f s",
                        exc, self.watch.every_s)

    def _take_group(self, timeout: float) -> list[tuple[str, bytes, int]]:
        """Up to MAX_GROUP messages, live ones first, backlog up to about the catalog's
        group_bytes (v2 messages weighed as the v1 messages their readings would make)."""
        if not self.arrived.acquire(timeout=timeout):
            return []
        group, size, budget = [], 0, self.catalog.group_bytes
        for lane in (self.live, self.messages):
            while len(group) < MAX_GROUP and (lane is self.live or size < budget):
                try:
                    group.append(lane.get_nowait())
                except queue.Empty:
                    break
                topic, payload, _received = group[-1]
                size += len(payload) * (V2_GROUP_WEIGHT if wire.is_v2_topic(topic) else 1)
        for _ in range(len(group) - 1):  # the first was acquired above
            self.arrived.acquire()
        return group

    def process(self, group: list[tuple[str, bytes, int]]) -> None:
        """Verify a group while the previous group is written and committed, then hand it
        to the committing thread: its writing, commit and acks go on in the background
        until the next group or :meth:`flush`. The writing is there, not here, because on
        a database server most of it is waiting for the server (bench/catalog_backends.py:
        PostgreSQL 0.47 of SQLite with the writing here)."""
        try:
            outcomes = self._verify(group)  # reads keys and contexts from the catalog
        except Exception as exc:
            if not self.catalog.is_transient(exc):
                raise
            self.flush()
            self._failed(group, exc)  # the database's state: the stations send it again
            return
        self.flush()
        self._pending = (group, self._committer.submit(self._store, *outcomes))

    def flush(self) -> None:
        """Wait until the group in flight is committed and acknowledged (or has failed)."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        group, done = pending
        try:
            done.result()
        except Exception as exc:
            self._failed(group, exc)

    def _failed(self, group: list[tuple[str, bytes, int]], error: Exception) -> None:
        """Called while handling ``error``: nothing of the group was acknowledged."""
        if self.catalog.is_transient(error):
            # every agent publishes its batches again after its ack timeout: logged, not lost
            log.exception("could not commit %d messages; they will be redelivered by their "
                          "stations", len(group))
            time.sleep(1)
        else:
            self._store_one_by_one(group, error)

    def _verify(self, group: list[tuple[str, bytes, int]]):
        """The group's outcomes sorted: batches, gap reports, announced keys, refusals."""
        # a key revoked, added or retired since the last group counts from this group on
        self._keys.refresh()
        accepted: list[AcceptedBatch] = []
        gaps: list[AcceptedGap] = []
        announced: list[AcceptedKey] = []
        refusals: list[Refusal] = []
        sorted_into = {AcceptedBatch: accepted, AcceptedGap: gaps, AcceptedKey: announced}
        for topic, payload, received_at in group:
            for outcome in verify_message(topic, payload, received_at, self._keys,
                                          self.decryption_key, self._contexts):
                sorted_into.get(type(outcome), refusals).append(outcome)
        return accepted, gaps, announced, refusals

    def _store(self, accepted: list[AcceptedBatch], gaps: list[AcceptedGap],
               announced: list[AcceptedKey], refusals: list[Refusal]) -> None:
        """Write the group's batches, commit them, record its gap reports and refusals,
        and only then acknowledge."""
        registered = self._register_keys(announced, refusals)
        kept: list[AcceptedBatch] = []  # the batches the replay window lets through

        def screen(batches: list[AcceptedBatch]) -> list[AcceptedBatch]:
            kept.extend(self.window.screen(batches, refusals))
            return kept
        commit = self._staged(accepted, screen) if accepted else list
        started = time.perf_counter()  # the commit's duration, its writing apart
        new_flags = commit()
        if self.metrics is not None:
            self.metrics.committed(kept, new_flags, time.perf_counter() - started)
            self.metrics.refused(refusals)
        self.catalog.record_gaps(gaps)
        for item in gaps:
            log.warning("station %s reports a gap: %d readings (%d batches) evicted from "
                        "its outbox (%s)", item.gap.station, item.gap.readings,
                        item.gap.batches, item.gap.reason)
        self.catalog.record_refusals(refusals)
        for refusal in refusals:
            log.warning("refused message on %s: %s (%s)", refusal.topic, refusal.reason,
                        refusal.detail)
        self.committed += sum(new_flags)
        self.duplicates += len(new_flags) - sum(new_flags)
        self.refused += len(refusals)
        fault_point("after-commit")  # fault injection: a crash between commit and ack
        self._acknowledge(kept, gaps, refusals, registered)

    def _store_one_by_one(self, group: list[tuple[str, bytes, int]], error: Exception) -> None:
        """A group failed for a reason in its content, not the database's state: it would
        fail again at every redelivery, and take other stations' batches with it. Each
        batch (gap report, key) is stored alone; one that fails alone is refused as
        ``unstorable`` (a batch's refusal is acknowledged, so its station parks it, with the
        reason, instead of sending it forever)."""
        log.error("could not commit %d messages (%s: %s); storing them one at a time to "
                  "find what the catalog cannot store", len(group), type(error).__name__,
                  error)
        accepted, gaps, announced, refusals = self._verify(group)
        singles = [([item], [], [], []) for item in accepted] + \
            [([], [item], [], []) for item in gaps] + [([], [], [item], []) for item in announced]
        for parts in [([], [], [], refusals)] + singles:
            try:
                self._store(*parts)
            except Exception as exc:
                item = next(chain.from_iterable(parts), None)
                if self.catalog.is_transient(exc) or isinstance(item, Refusal) or item is None:
                    log.exception("could not store %s; it is not acknowledged, so its "
                                  "station sends it again", _describe(item, parts))
                    continue
                log.exception("the catalog cannot store %s; refusing it as unstorable",
                              _describe(item, parts))
                try:
                    self._store([], [], [], [unstorable(item, exc)])
                except Exception:
                    log.exception("could not record the refusal either; its station will "
                                  "send the message again")

    def _staged(self, accepted: list[AcceptedBatch], screen):
        """The catalog's stage with the replay window and centre QC: the checks' history
        moves on only if the transaction commits."""
        try:
            commit = self.catalog.stage(accepted, self.qc, screen)
        except BaseException:
            self.qc.rolled_back()
            raise

        def finish() -> list[bool]:
            try:
                flags = commit()
            except BaseException:
                self.qc.rolled_back()
                raise
            self.qc.committed()
            return flags
        return finish

    def _register_keys(self, announced: list[AcceptedKey],
                       refusals: list[Refusal]) -> list[AcceptedKey]:
        """Store announced keys (the signer retires after the grace period); a key that
        belongs to another station becomes a refusal."""
        if not announced:
            return []
        registered = []
        for item, problem in zip(announced, self.catalog.rotate_keys(announced,
                                                                     self.key_grace_s)):
            if problem:
                refusals.append(Refusal(item.topic, "key-in-use", problem, item.payload,
                                        item.received_at, station=item.rotation.station,
                                        key_id=item.signer))
            else:
                registered.append(item)
                log.info("station %s rotated to key %s; key %s retires in %.0f s",
                         item.rotation.station, item.rotation.key_id, item.signer,
                         self.key_grace_s)
        self._keys.clear()
        return registered

    def _acknowledge(self, accepted: list[AcceptedBatch], gaps: list[AcceptedGap],
                     refusals: list[Refusal], keys: list[AcceptedKey] = ()) -> None:
        acks: dict[tuple[str, str], wire.Ack] = {}

        def ack_for(topic: str, epoch: str) -> wire.Ack:
            network, station = topic.split("/")[2:4]
            return acks.setdefault((wire.ack_topic(network, station), epoch), wire.Ack(epoch))

        for item in accepted:
            ack = ack_for(item.topic, item.batch.epoch)
            ack.committed.append(item.batch.seq)
            if item.context is not None:
                ref = wire.context_ref(item.context)
                if ref not in ack.contexts:
                    ack.contexts.append(ref)
        for item in gaps:
            ack_for(item.topic, item.gap.epoch).gaps.append(item.gap.id)
        for item in keys:
            ack_for(item.topic, item.rotation.epoch).keys.append(item.rotation.key_id)
        for refusal in refusals:
            if refusal.context_ref is not None:  # under no epoch: its context names it
                unknown = ack_for(refusal.topic, "").contexts_unknown
                if refusal.context_ref not in unknown:
                    unknown.append(refusal.context_ref)
            if refusal.verified and refusal.epoch is not None and refusal.seq is not None:
                ack_for(refusal.topic, refusal.epoch).refused.append(
                    (refusal.seq, f"{refusal.reason}: {refusal.detail}", refusal.key_id)
                    if refusal.key_id else (refusal.seq, f"{refusal.reason}: {refusal.detail}"))
        for (topic, _epoch), ack in acks.items():
            ack.now = now_us()  # lets a station without a disciplined clock estimate it
            ack.bundles = wire.MAX_BUNDLE_BATCHES  # backlog may come in bundles this large
            ack.protocol = self.protocol
            self._publish(topic, wire.encode_ack(ack))

    def _publish_or_raise(self, topic: str, payload: bytes, retain: bool) -> None:
        if self._link is None:
            raise OSError("the collector's MQTT process is not running")
        self._link.publish(topic, payload, retain)

    def _publish(self, topic: str, payload: bytes) -> None:
        if self._link is not None:  # not running (a test, the bench): nobody to tell
            try:
                self._link.publish(topic, payload)
            except OSError:  # the link has ended; the stations send the batches again
                log.warning("could not hand an ack for %s to the MQTT process", topic)
