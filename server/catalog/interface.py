"""The catalog's one interface: everything the collector, the CLI, the HTTP API, the demo
and the benches ask of storage. A backend implements all of it (server/catalog/sqlite.py
is the reference) and registers through the ``obslink_register_catalog_backends`` hook;
callers get one through :func:`obslink.server.catalog.open_catalog`.

Batches are stored idempotently on (station, epoch, seq): at-least-once on the wire,
exactly-once here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable

from obslink.server.catalog import merkle
from obslink.server.catalog.queries import QueryError
from obslink.server.catalog.outcomes import (AcceptedBatch, AcceptedGap, AcceptedKey,
                                             BrokerAccount, CentreChecked, QCCounts, Refusal,
                                             Station)

# The collector's centre QC, handed the batches a group adds (duplicates are not checked
# again); the catalog stores what it returns in the same transaction.
CentreCheck = Callable[[list[AcceptedBatch]], CentreChecked]
# The collector's replay window, handed a group's batches inside the commit's transaction;
# it returns the ones to store (the others it has refused).
Screen = Callable[[list[AcceptedBatch]], list[AcceptedBatch]]


class Catalog(ABC):
    """Storage for batches, their provenance, stations, keys, tokens and broker accounts."""

    #: where the catalog lives: a SQLite file's path, or a database URL
    location: str
    #: the key id of the collector committing through this object, kept in each batch's
    #: log leaf ("" for none)
    committed_by: str = ""
    #: about how many bytes of backlog messages the collector commits in one transaction
    #: (live ones come first, whatever their size): large enough that a commit's fixed
    #: cost (its fsync, a round trip a statement) is shared by many batches, small enough
    #: that a live minute waits little behind a backlog. On SQLite 64 KiB (about three
    #: bundles of 32 batches) against 16 KiB drained 62,154 against 57,210-58,544
    #: readings/s (bench/backlog_drain.py, 1,000 x 6 h), live p99 still 151 ms.
    group_bytes: int = 64 * 1024

    # -- ingest: the collector's hot path ----------------------------------------------------

    def commit(self, accepted: list[AcceptedBatch], check: CentreCheck | None = None,
               screen: Screen | None = None) -> list[bool]:
        """Store batches in one transaction; per batch True when new, False when a
        duplicate. See :meth:`stage`."""
        return self.stage(accepted, check, screen)()

    @abstractmethod
    def stage(self, accepted: list[AcceptedBatch], check: CentreCheck | None = None,
              screen: Screen | None = None) -> Callable[[], list[bool]]:
        """:meth:`commit` in two steps: the batches are written in a transaction left open,
        and the function returned commits it (durably) and returns the flags, or rolls it
        back and raises. It may run on another thread, so that the wait for the disk
        overlaps other work; nothing else may use this catalog until it has returned.

        ``screen`` is called first, inside the transaction, once no other writer can
        change the replay floors or gap reports until it ends (collector workers sharing
        the catalog): it returns the batches to store (server/replay_window.py), and the
        flags are those batches'. ``check`` is called once with the batches that are new,
        and its columns are stored instead of the ones sent; without it, the columns as
        sent are. The replay floors the stored batches declare (outcomes.declared_floors)
        are stored with them."""

    @abstractmethod
    def is_transient(self, error: Exception) -> bool:
        """Whether ``error`` (raised by this backend) is the database's state (disk full,
        locked, I/O, damaged), not the message's: a redelivery may succeed. Anything else
        fails again each time."""

    @abstractmethod
    def reader(self) -> "Catalog":
        """Another connection to the same catalog, for lookups (keys) while this one
        writes."""

    @abstractmethod
    def qc_state(self) -> list[tuple[str, str, str]]:
        """(check, series, JSON) rows of the centre's QC history, to load a QCRunner."""

    @abstractmethod
    def record_gaps(self, gaps: list[AcceptedGap]) -> None:
        """Store gap reports, idempotently on (station, epoch, gap id)."""

    @abstractmethod
    def record_refusals(self, refusals: list[Refusal]) -> None:
        """Store refused messages with the SHA-256 of each payload as received."""

    @abstractmethod
    def replay_floors(self, outboxes: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """(station, epoch) -> the highest floor its committed batches declared."""

    @abstractmethod
    def commit_times(self, accepted: list[AcceptedBatch]) -> dict[tuple[str, str, int], str]:
        """When the catalog committed those of ``accepted`` it holds (UTC text)."""

    @abstractmethod
    def evicted(self, outboxes: set[tuple[str, str]]
                ) -> dict[tuple[str, str], list[tuple[int, int, int, str]]]:
        """(station, epoch) -> (first seq, last seq, gap id, reason) of every run of
        batches its gap reports say the station's outbox evicted."""

    # -- keys --------------------------------------------------------------------------------

    @abstractmethod
    def station_keys(self, station: str) -> dict[str, tuple[bytes, str]]:
        """key id -> (raw public key, status) for a station; empty if unknown. A key being
        replaced counts as active until its grace period ends, then as retired."""

    @abstractmethod
    def keys_version(self) -> tuple:
        """Changes whenever a key is added or revoked: the collector's cue to look again."""

    @abstractmethod
    def next_retirement(self) -> int | None:
        """When (µs) the next replaced key's grace period ends, if any."""

    @abstractmethod
    def rotate_keys(self, announced: list[AcceptedKey], grace_s: float) -> list[str]:
        """Register announced keys, retiring their signers after ``grace_s``. Idempotent.
        Returns, per announcement, "" or why it was refused."""

    @abstractmethod
    def add_key(self, station: str, public_key: bytes, key_id: str) -> None:
        """Register another key of an existing, active station."""

    @abstractmethod
    def keys(self, station: str | None = None) -> list[dict]:
        """Every key (of one station) with its status and times."""

    @abstractmethod
    def revoke_key(self, key_id: str) -> dict:
        """Mark a key revoked; a collector refuses its next batch (reason revoked-key)."""

    @abstractmethod
    def keys_changed(self) -> None:
        """Keys changed through another object: the next keys_version() looks again."""

    # -- stations ----------------------------------------------------------------------------

    @abstractmethod
    def add_station(self, station: Station, public_key: bytes | None,
                    key_id: str | None) -> None:
        """Register a new station, with its key unless it will enrol for one (no broker
        account: operators use :meth:`register`)."""

    @abstractmethod
    def register(self, station: Station, public_key: bytes | None = None,
                 key_id: str | None = None) -> None:
        """A new station, with its key unless it enrols for one, and its broker account."""

    @abstractmethod
    def station_exists(self, station: str) -> bool: ...

    @abstractmethod
    def find(self, station: str) -> dict | None:
        """The station's record, or None."""

    def get(self, station: str) -> dict:
        """The station's record; NoSuchStationError names the command that lists them."""
        from obslink.server.catalog.errors import NoSuchStationError
        found = self.find(station)
        if found is None:
            raise NoSuchStationError(f"no station {station!r} in the catalog; `obslink "
                                     "collector station list` shows the stations")
        return found

    @abstractmethod
    def stations(self, include_retired: bool = False) -> list[dict]: ...

    @abstractmethod
    def show(self, station: str) -> dict:
        """The record with its keys, tokens, broker account, enrolment attempts and what
        the catalog holds of it."""

    @abstractmethod
    def update(self, station: str, public_key: bytes | None = None,
               key_id: str | None = None, **changes) -> dict:
        """Change the given fields only (None: unchanged); add a key if one is given."""

    @abstractmethod
    def retire(self, station: str) -> dict:
        """The station reports no more: its keys are revoked, its tokens and broker account
        withdrawn; its record, data and identifiers stay."""

    # -- datasets and the catalog's settings (docs/provenance.md, "Datasets") ----------------

    @abstractmethod
    def catalog_settings(self) -> dict[str, str]:
        """centre_id, default_classification, default_licence."""

    @abstractmethod
    def update_catalog_settings(self, **changes: str) -> dict[str, str]: ...

    @abstractmethod
    def datasets(self, station: str | None = None) -> list[dict]:
        """Every dataset (of one station) with its elements and temporal extent now."""

    @abstractmethod
    def dataset(self, identifier: str) -> dict:
        """One dataset; NoSuchRecordError names the command that lists them."""

    @abstractmethod
    def update_dataset(self, identifier: str, **changes) -> dict:
        """Change title, description, classification or licence (None: unchanged)."""

    # -- data users' queries (docs/api.md) -----------------------------------------------------

    @abstractmethod
    def station_summaries(self) -> list[dict]:
        """Every station with ``last_observed_us``, its newest observation time."""

    @abstractmethod
    def observations(self, query, after=None):
        """An iterator of ObservationRow matching ``query`` (queries.ObservationQuery) after
        the cursor ``after``: series by series, each in time order; it reads in short
        statements, so a long answer neither fills memory nor holds up ingest."""

    def observation_text(self, query, after=None, fmt: str = "csv",
                         limit: int | None = None):
        """The matching observations (at most ``limit``) as text: chunks of CSV lines
        (``csv``) or of JSON objects each followed by a comma (``json``), each chunk with
        the cursor after its last row and its row count. The default formats
        :meth:`observations` with queries.csv_line / json_object; a backend may build the
        same text itself, faster."""
        from itertools import islice

        from obslink.server.catalog.queries import csv_line, json_object

        line = csv_line if fmt == "csv" else (lambda row: json_object(row) + ",")
        rows = self.observations(query, after)
        if limit is not None:
            rows = islice(rows, limit)
        while chunk := list(islice(rows, 2000)):
            yield "".join(map(line, chunk)), chunk[-1].cursor, len(chunk)

    # -- enrolment ---------------------------------------------------------------------------

    @abstractmethod
    def issue_token(self, station: str, valid_s: int) -> tuple[str, int]:
        """A one-time enrolment token for ``station`` (only its hash kept; the station's
        earlier unused tokens stop working). Returns (token, expiry in µs)."""

    @abstractmethod
    def tokens(self, station: str | None = None) -> list[dict]:
        """Tokens with their status: live, used, expired or revoked."""

    @abstractmethod
    def revoke_tokens(self, station: str) -> int:
        """Withdraw the station's live token; returns how many were withdrawn (0 or 1)."""

    @abstractmethod
    def enrol(self, token: str, public_key: bytes, key_id: str,
              client: str | None = None) -> Station:
        """Bind ``public_key`` to the token's station, once. Raises EnrolmentError. Every
        attempt, granted or refused, is logged and kept."""

    @abstractmethod
    def enrolment_attempts(self, station: str | None = None, limit: int = 50
                           ) -> list[dict]: ...

    # -- broker accounts ---------------------------------------------------------------------

    @abstractmethod
    def broker_account(self, station: str) -> BrokerAccount:
        """The station's broker account: the same password every time it is asked for."""

    @abstractmethod
    def new_broker_password(self, station: str) -> BrokerAccount:
        """A new generation of the station's password."""

    @abstractmethod
    def collector_password(self) -> str:
        """A new random password for the collector's own account (only its hash kept)."""

    @abstractmethod
    def broker_accounts(self) -> list[tuple[str, str]]:
        """(username, Mosquitto password hash) of every account."""

    @abstractmethod
    def record_broker_config(self, directory: Path) -> None:
        """`broker-config` wrote every account as it is now into ``directory``."""

    @abstractmethod
    def closed_broker(self) -> bool:
        """Whether `broker-config` was ever run for this catalog."""

    # -- reports -----------------------------------------------------------------------------

    @abstractmethod
    def stats(self) -> dict[str, int]: ...

    @abstractmethod
    def qc_counts(self, station: str, since: int | None = None) -> QCCounts:
        """QC flags and checks of a station's observations (observed at or after since)."""

    @abstractmethod
    def qc_check_names(self) -> dict[int, str]: ...

    def retired_months(self) -> list[dict]:
        """Months of observations moved out of the catalog into archive files (month,
        start_us, end_us, rows, last_row, archive, sha256, retired_at), oldest first:
        their batches, log leaves and provenance stay (docs/scaling.md, "Retention").
        A catalog that cannot retire months has none."""
        return []

    @abstractmethod
    def gaps(self, station: str | None = None) -> list[dict]: ...

    @abstractmethod
    def refusals(self, station: str | None = None, since: int | None = None,
                 limit: int = 50) -> tuple[dict[str, int], list[dict]]:
        """Refused messages: counts per reason, and the newest ``limit`` of them."""

    # -- monitoring (docs/monitoring.md) -------------------------------------------------------

    @abstractmethod
    def schedules(self, station: str | None = None) -> dict[tuple[str, str], int]:
        """(station, element) -> its reporting interval in seconds, where one is set."""

    @abstractmethod
    def set_schedule(self, station: str, element: str, interval_s: int | None) -> None: ...

    @abstractmethod
    def monitor_counts(self, start_us: int, end_us: int, station: str | None = None,
                       by_hour: bool = False) -> list[tuple]: ...

    @abstractmethod
    def element_counts(self, station: str, start_us: int, end_us: int) -> list[tuple]: ...

    @abstractmethod
    def monitor_streams(self, station: str | None = None) -> list[tuple]: ...

    @abstractmethod
    def monitor_stations(self) -> list[dict]: ...

    @abstractmethod
    def refusal_counts(self, since_us: int) -> dict[str, int]: ...

    @abstractmethod
    def gap_counts(self, since_us: int) -> dict[str, tuple[int, int]]: ...

    @abstractmethod
    def newest_values(self, element: str) -> dict[str, tuple[int, float | None]]:
        """station -> (observed µs, value) of its newest reading of ``element``."""

    @abstractmethod
    def alarm_rules(self) -> dict[tuple[str, str], dict]: ...

    @abstractmethod
    def set_alarm_rule(self, station: str, rule: str, settings: dict | None) -> None: ...

    @abstractmethod
    def open_alarms(self) -> list[dict]: ...

    @abstractmethod
    def alarms(self, station: str | None = None, open_only: bool = True,
               limit: int = 200) -> list[dict]: ...

    @abstractmethod
    def alarm(self, alarm_id: int) -> dict: ...

    @abstractmethod
    def change_alarms(self, raised: list[tuple], cleared: list[int], at_us: int,
                      channels: list[str]) -> list[dict]: ...

    @abstractmethod
    def acknowledge_alarm(self, alarm_id: int, by: str) -> dict: ...

    @abstractmethod
    def webhooks(self) -> list[dict]: ...

    @abstractmethod
    def add_webhook(self, url: str) -> dict: ...

    @abstractmethod
    def remove_webhook(self, url: str) -> None: ...

    @abstractmethod
    def due_deliveries(self, now: int, channel_prefix: str = "http", limit: int = 50
                       ) -> list[dict]: ...

    @abstractmethod
    def record_delivery(self, delivery_id: int, status: str, error: str | None,
                        next_attempt_us: int | None = None) -> None: ...

    @abstractmethod
    def deliveries(self, alarm_id: int | None = None, limit: int = 200) -> list[dict]: ...

    # -- the transparency log (docs/provenance.md) --------------------------------------------

    @abstractmethod
    def tree_size(self) -> int:
        """How many leaves the log holds (one per committed batch)."""

    @abstractmethod
    def leaf_hashes(self, start: int = 0, stop: int | None = None) -> list[bytes]: ...

    @abstractmethod
    def tree_root(self) -> tuple[int, bytes]:
        """(size, root) of the log now."""

    @abstractmethod
    def sign_tree_head(self, key) -> dict:
        """Sign the tree head now with the collector's Ed25519 key; store and return it."""

    @abstractmethod
    def tree_heads(self, limit: int = 50) -> list[dict]:
        """The newest signed tree heads, newest first."""

    @abstractmethod
    def all_tree_heads(self) -> list[dict]: ...

    @abstractmethod
    def head_covering(self, index: int) -> dict | None:
        """The newest signed tree head whose tree holds leaf ``index``."""

    def inclusion(self, index: int, size: int) -> tuple[bytes, bytes, list[bytes]]:
        """(leaf hash, root, RFC 9162 audit path) of leaf ``index`` in the tree of ``size``
        leaves, the leaves read once."""
        leaves = self._tree_of(size)
        if not 0 <= index < size:
            raise QueryError(f"leaf {index} is not in a tree of {size} leaves")
        return leaves[index], merkle.root(leaves), merkle.inclusion_proof(index, leaves)

    def consistency(self, old: int, new: int) -> tuple[bytes, bytes, list[bytes]]:
        """(old root, new root, RFC 9162 consistency proof) of the trees of ``old`` and
        ``new`` leaves, the leaves read once."""
        leaves = self._tree_of(new)
        if not 0 <= old <= new:
            raise QueryError(f"old ({old}) must not be larger than new ({new})")
        return (merkle.root(leaves[:old]), merkle.root(leaves),
                merkle.consistency_proof(old, leaves))

    def _tree_of(self, size: int) -> list[bytes]:
        now = self.tree_size()
        if not 0 <= size <= now:
            raise QueryError(f"the log holds {now} leaves; it has no tree of {size}")
        return self.leaf_hashes(0, size)

    @abstractmethod
    def log_leaf_rows(self):
        """(index, batch id, product id, leaf hash) of every leaf, in order."""

    # -- stored batches as records (provenance, verify) ----------------------------------------

    @abstractmethod
    def batch_context(self, station: str, ref: bytes) -> bytes | None:
        """A station's v2 batch context by its 8-byte reference, if the catalog holds it."""

    @abstractmethod
    def batch_record(self, station: str, epoch: str, seq: int) -> dict | None:
        """The stored batch with its bundle digests, log leaf and first observation row."""

    @abstractmethod
    def batch_records(self, after_id: int = 0, limit: int = 1000) -> list[dict]: ...

    @abstractmethod
    def observation_rows(self, first: int, last: int) -> list[tuple]:
        """Observation rows with ids first..last (a batch's are consecutive)."""

    @abstractmethod
    def stray_rows(self):
        """(row id, batch id) of observation rows outside any batch's own rows."""

    @abstractmethod
    def key_record(self, key_id: str) -> dict | None:
        """A station key with its raw public key, status and times."""

    # -- products (docs/products.md) ----------------------------------------------------------

    @abstractmethod
    def register_product(self, manifest, body: bytes, topic: str, key_id: str,
                         signature: bytes, received_at: int) -> str:
        """Record a product the product store holds whole; idempotent on its identity.
        Returns its identifier."""

    @abstractmethod
    def product_records(self, after: int = 0, limit: int = 1000) -> list[dict]:
        """Stored products with their signed manifests and leaves (`catalog verify`)."""

    @abstractmethod
    def product_registered(self, station: str, epoch: str, number: int) -> bool: ...

    @abstractmethod
    def products(self, station: str | None = None, start_us: int | None = None,
                 end_us: int | None = None, after: int = 0, limit: int = 100) -> list[dict]:
        """Product records in registration order after record ``after``."""

    @abstractmethod
    def product(self, identifier: str) -> dict:
        """A product's record with its signed manifest; NoSuchRecordError if unknown."""

    @abstractmethod
    def record_product_gap(self, station: str, epoch: str, gap: dict,
                           received_at: int) -> None:
        """A product a station's outbox refused or evicted (idempotent)."""

    @abstractmethod
    def product_gaps(self, station: str | None = None) -> list[dict]: ...

    # -- accounts and the audit log (docs/access.md; server/catalog/sqlite_access.py) ----------

    @abstractmethod
    def create_account(self, name: str, role: str, clearance: str, kind: str = "personal",
                       real_name: str = "") -> dict: ...

    @abstractmethod
    def accounts(self) -> list[dict]: ...

    @abstractmethod
    def account(self, name: str) -> dict:
        """An account with its tokens (never their secrets); NoSuchRecordError if unknown."""

    @abstractmethod
    def update_account(self, name: str, role: str | None = None,
                       clearance: str | None = None, status: str | None = None,
                       real_name: str | None = None) -> dict: ...

    @abstractmethod
    def add_token(self, account: str, token_id: str, secret_hash: str,
                  scopes: tuple[str, ...], expires_us: int | None, note: str = "") -> dict: ...

    @abstractmethod
    def revoke_token(self, token_id: str) -> dict: ...

    @abstractmethod
    def token_holder(self, token_id: str) -> dict | None:
        """A token with its account's role, clearance and status, for authentication."""

    @abstractmethod
    def add_session(self, session_hash: str, token_id: str, csrf: str,
                    expires_us: int) -> None: ...

    @abstractmethod
    def session_holder(self, session_hash: str) -> dict | None: ...

    @abstractmethod
    def end_session(self, session_hash: str) -> None: ...

    @abstractmethod
    def blacklist(self) -> list[dict]: ...

    @abstractmethod
    def add_to_blacklist(self, network: str, reason: str) -> str:
        """Refuse an address or network (ConfigError if it is neither); returns it as
        kept."""

    @abstractmethod
    def remove_from_blacklist(self, network: str) -> None: ...

    @abstractmethod
    def record_failure(self, address: str, at_us: int, forget_before_us: int) -> None: ...

    @abstractmethod
    def failures_since(self, address: str, since_us: int) -> tuple[int, int | None]: ...

    @abstractmethod
    def dataset_levels(self) -> dict[str, tuple[str, str]]:
        """Every dataset's (station, classification level), by dataset id."""

    @abstractmethod
    def classification_of(self, dataset: str) -> str | None: ...

    @abstractmethod
    def series_stations(self, series: list[int]) -> dict[int, str]: ...

    @abstractmethod
    def append_audit(self, entry: dict) -> dict:
        """Append a row to the hash-chained audit log; returns it with seq and hash."""

    @abstractmethod
    def sync_audit(self) -> None:
        """Make the audit rows committed so far durable (they are committed without
        waiting for the disk)."""

    @abstractmethod
    def audit_rows(self, after_seq: int = 0, account: str | None = None,
                   since_us: int | None = None, until_us: int | None = None,
                   action: str | None = None, limit: int | None = None): ...

    @abstractmethod
    def close(self) -> None: ...
