"""The obslink wire protocol, version 1 (docs/protocol.md). Imported by agent and collector.

A batch travels as a signed envelope: ``{"v", "kid", "body", "sig"}`` in msgpack, where
``body`` is the msgpack-encoded batch and ``sig`` an Ed25519 signature over
``SIGNING_CONTEXT + topic + b"\\n" + body``. Binding the topic means a batch cannot be
replayed on another station's topic.

A backlog drain may send a bundle instead, once the collector's acks say it takes them:
``{"v", "kid", "bodies", "sig"}``, several batch bodies under one signature over
``BUNDLE_CONTEXT + topic + b"\\n" + SHA-256(body 1) + SHA-256(body 2) + …``. Each inner
batch keeps its own identity, and the digest list is all a later check of one batch's
provenance needs besides that batch's own body.
"""

from __future__ import annotations

import hashlib
import math
import operator
import re
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import msgpack
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from obslink.errors import WireError
from obslink.readings import MAX_TIME_US, MIN_TIME_US, Reading

PROTOCOL_VERSION = 1
TOPIC_ROOT = "obslink/v1"
# MQTT 5 user property naming a data message's lane ("live" or "backlog"): scheduling
# advice for the collector, not signed and never trusted for anything else
LANE_PROPERTY = "obslink-lane"
SIGNING_CONTEXT = b"obslink-batch-v1\n"
BUNDLE_CONTEXT = b"obslink-bundle-v1\n"
MAX_BUNDLE_BATCHES = 256  # what this collector accepts in one bundle (announced in acks)
MAX_ENVELOPE_BYTES = 16 * 1024 * 1024
STATION_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
NETWORK_RE = STATION_ID_RE


def check_station_id(station: str) -> str:
    if not isinstance(station, str) or not STATION_ID_RE.match(station):
        raise WireError(
            f"station id {station!r} is not usable in topics: use 1-64 letters, digits, '.', "
            "'_' or '-', starting with a letter or digit (WIGOS ids like 0-20000-0-54511 work)")
    return station


def data_topic(network: str, station: str) -> str:
    return f"{TOPIC_ROOT}/{network}/{station}/data"


def ack_topic(network: str, station: str) -> str:
    return f"{TOPIC_ROOT}/{network}/{station}/ack"


def status_topic(network: str, station: str) -> str:
    return f"{TOPIC_ROOT}/{network}/{station}/status"


def gap_topic(network: str, station: str) -> str:
    return f"{TOPIC_ROOT}/{network}/{station}/gap"


def key_topic(network: str, station: str) -> str:
    return f"{TOPIC_ROOT}/{network}/{station}/key"


def collector_subscription(group: str, network: str = "+", kind: str = "data") -> str:
    """MQTT 5 shared subscription: N collector workers in ``group`` share the data (or gap)
    topics."""
    return f"$share/{group}/{TOPIC_ROOT}/{network}/+/{kind}"


def parse_data_topic(topic: str, kind: str = "data") -> tuple[str, str]:
    """``obslink/v1/NET/STATION/data`` (or ``…/gap``) → (network, station)."""
    parts = topic.split("/")
    if len(parts) != 5 or "/".join(parts[:2]) != TOPIC_ROOT or parts[4] != kind:
        raise WireError(f"topic {topic!r} is not {TOPIC_ROOT}/<network>/<station>/{kind}")
    return parts[2], parts[3]


@dataclass
class Batch:
    """A batch of readings from one station, as signed by the station."""

    station: str
    epoch: str  # random id of the station's outbox; (station, epoch, seq) is the batch identity
    seq: int
    created_at: int  # µs, the gateway's clock
    readings: list[Reading]
    adapter: str = ""
    adapter_version: str = ""
    source: dict[str, Any] = field(default_factory=dict)  # name, stream, start, end, sha256
    clock: dict[str, Any] = field(default_factory=dict)  # synced (bool|None), offset_ms
    # Names of the QC checks whose bits the readings' qc_ran/qc_failed masks use; empty when
    # the sender ran no QC (the collector then runs it).
    qc_checks: list[str] = field(default_factory=list)
    # The lowest sequence number still waiting in the station's outbox when this batch was
    # made: every batch below it was acknowledged, evicted or parked and is never sent
    # again, so the collector refuses one arriving as a replay. None from older agents.
    floor: int | None = None


def encode_batch(batch: Batch, qc_columns=None) -> bytes:
    """Encode a batch body. Readings are columnar with a table of distinct fields.

    ``qc_columns`` (anything with ``qc``, ``ran`` and ``failed`` lists aligned with the
    readings, as QC produces them) takes the place of the readings' own QC fields."""
    fields: dict[tuple[str, str, str, int | None, str | None], int] = {}
    times, field_index, values, flags = [], [], [], []
    for i, reading in enumerate(batch.readings):
        key = (reading.element, reading.unit, reading.source_field, reading.period_s,
               reading.source_unit)
        index = fields.get(key)
        if index is None:
            index = fields[key] = len(fields)
        times.append(reading.observed_at)
        field_index.append(index)
        values.append(reading.value)
        if reading.source_flag is not None:
            flags.append([i, reading.source_flag])
    if qc_columns is None:
        qcs = [r.qc for r in batch.readings]
        ran = [r.qc_ran for r in batch.readings]
        failed = [r.qc_failed for r in batch.readings]
    else:
        qcs, ran, failed = qc_columns.qc, qc_columns.ran, qc_columns.failed
    body = {
        "v": PROTOCOL_VERSION, "station": batch.station, "epoch": batch.epoch,
        "seq": batch.seq, "created_at": batch.created_at, "clock": batch.clock,
        "adapter": [batch.adapter, batch.adapter_version], "source": batch.source,
        "fields": [list(key if key[4] is not None else key[:4]) for key in fields],
        "t": times, "f": field_index,
        "val": values, "qc": qcs, "flags": flags,
    }
    if batch.floor is not None:
        body["floor"] = batch.floor
    if batch.qc_checks:
        body["qcc"] = list(batch.qc_checks)
        body["qcr"] = ran
        body["qcf"] = failed
    return msgpack.packb(body, use_bin_type=True)


@dataclass
class BatchColumns:
    """A decoded batch as the columns it travels in. The collector stores these as they
    are; a :class:`Reading` per value is made only where something needs one."""

    station: str
    epoch: str
    seq: int
    created_at: int
    adapter: str
    adapter_version: str
    source: dict[str, Any]
    clock: dict[str, Any]
    qc_checks: list[str]
    floor: int | None
    # (element, unit, source_field, period_s, source_unit or None)
    fields: list[tuple[str, str, str, int | None, str | None]]
    times: list[int]
    field_index: list[int]  # per reading, its entry in ``fields``
    values: list[float | None]
    qc: list[int]
    qc_ran: list[int]
    qc_failed: list[int]
    flags: dict[int, str]  # reading index -> the source's flag

    def readings(self) -> list[Reading]:
        flag_of = self.flags.get if self.flags else _no_flag
        new = tuple.__new__  # Readings without NamedTuple's Python-level __new__
        return [new(Reading, (t, element, v, unit, source_field, flag_of(i), q, period, a, b,
                              source_unit))
                for i, (t, (element, unit, source_field, period, source_unit), v, q, a, b)
                in enumerate(zip(
                    self.times, map(self.fields.__getitem__, self.field_index), self.values,
                    self.qc, self.qc_ran, self.qc_failed))]

    def to_batch(self) -> Batch:
        return Batch(self.station, self.epoch, self.seq, self.created_at, self.readings(),
                     self.adapter, self.adapter_version, self.source, self.clock,
                     self.qc_checks, self.floor)


def decode_batch(body: bytes) -> Batch:
    """Decode and validate a batch body; malformed input raises WireError, nothing else."""
    return decode_batch_columns(body).to_batch()


def decode_batch_columns(body: bytes) -> BatchColumns:
    """Decode and validate a batch body into its columns; malformed input raises WireError,
    nothing else. Runs once per batch at the collector, so checks are whole-column (in C)
    and a field table or QC name list seen before is not checked again."""
    try:
        data = msgpack.unpackb(body, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise WireError(f"batch body is not valid msgpack ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise WireError("batch body is not a map")
    return _usual_batch(data) or _checked_batch(data)


def _checked_batch(data: dict) -> BatchColumns:
    """Every check, one at a time, so that an error names the field that failed."""
    if data.get("v") != PROTOCOL_VERSION:
        raise WireError(f"unsupported batch version {data.get('v')!r}; this collector speaks "
                        f"version {PROTOCOL_VERSION}")
    try:
        station = check_station_id(data["station"])
        if ("station", station) not in _CHECKED:
            _remember(("station", station), [])
        epoch, seq, created_at = data["epoch"], data["seq"], data["created_at"]
        _expect(type(epoch) is str and 0 < len(epoch) <= 64, "epoch")
        _expect(type(seq) is int and 0 <= seq < 2**63, "seq")
        _expect(type(created_at) is int and MIN_TIME_US <= created_at <= MAX_TIME_US,
                "created_at")
        floor = data.get("floor")
        _expect(floor is None or (type(floor) is int and 0 <= floor <= seq), "floor")
        adapter = data.get("adapter", ["", ""])
        _expect(type(adapter) is list and len(adapter) == 2
                and type(adapter[0]) is str and type(adapter[1]) is str, "adapter")
        source, clock = data.get("source", {}), data.get("clock", {})
        _expect(type(source) is dict and type(clock) is dict, "source/clock")
        fields = _checked_fields(data["fields"])
        times, index, values, qcs = data["t"], data["f"], data["val"], data["qc"]
        _expect(type(times) is list and type(index) is list and type(values) is list
                and type(qcs) is list, "columns")
        count = len(times)
        _expect(len(index) == len(values) == len(qcs) == count, "column lengths")
        qc_checks, ran, failed = _qc_columns(data, count)
        if count:
            _expect(set(map(type, chain(times, index, qcs, ran, failed))) == {int},
                    "t, f, qc, qcr or qcf (integers expected)")
            _expect(min(times) >= MIN_TIME_US and max(times) <= MAX_TIME_US,
                    "t (a time outside the years 1 to 9999)")
            _expect(min(index) >= 0 and max(index) < len(fields), "f")
            _expect(min(qcs) >= 0 and max(qcs) <= 255, "qc")
            if qc_checks:  # qcf's bits are a subset of qcr's, so qcr's bounds cover both
                _expect(min(ran) >= 0 and max(ran) < 1 << len(qc_checks), "qcr")
                _expect(not any(map(operator.and_, failed, map(operator.invert, ran))),
                        "qcf (a check flagged a reading it did not run on)")
            value_types = set(map(type, values))
            _expect(value_types <= {int, float, type(None)}, "val")
            if int in value_types:  # msgpack gives ints for whole numbers a sender packed
                values = [float(v) if type(v) is int else v for v in values]
            _expect(all(map(math.isfinite, [v for v in values if v is not None])),
                    "val (NaN or infinity: a missing value travels as nil with a flag)")
        flags = data.get("flags", [])
        if flags:
            flags = dict(flags)
            _expect(all(type(i) is int and type(flag) is str for i, flag in flags.items()),
                    "flags")
        else:
            flags = {}
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(f"batch body is missing or has a malformed field ({exc})") from None
    return BatchColumns(station, epoch, seq, created_at, adapter[0], adapter[1], source, clock,
                        qc_checks, floor, fields, times, index, values, qcs, ran, failed, flags)


def _usual_batch(data: dict) -> BatchColumns | None:
    """The batch as _checked_batch would decode it, or None when it is not the usual case:
    a known station id, field table and QC name list, no source flags, every value a finite
    float. The checks are the same, joined into a few expressions, which costs half as much
    at a collector that decodes every batch; anything unusual or wrong goes the thorough way
    and gets its precise error."""
    get = data.get
    station, epoch, seq, created_at = get("station"), get("epoch"), get("seq"), get("created_at")
    times, index, values, qcs = get("t"), get("f"), get("val"), get("qc")
    floor, adapter = get("floor"), get("adapter", _NO_ADAPTER)
    source, clock, names = get("source", _NOTHING), get("clock", _NOTHING), get("qcc")
    if not (get("v") == PROTOCOL_VERSION and type(station) is str
            and ("station", station) in _CHECKED
            and type(epoch) is str and 0 < len(epoch) <= 64
            and type(seq) is int and 0 <= seq < 2**63
            and type(created_at) is int and MIN_TIME_US <= created_at <= MAX_TIME_US
            and (floor is None or (type(floor) is int and 0 <= floor <= seq))
            and type(adapter) is list and len(adapter) == 2
            and type(adapter[0]) is str and type(adapter[1]) is str
            and type(source) is dict and type(clock) is dict and not get("flags")
            and type(times) is list and type(index) is list and type(values) is list
            and type(qcs) is list and 0 < len(times) == len(index) == len(values) == len(qcs)
            and type(names) is list):
        return None
    ran, failed, raw_fields = get("qcr"), get("qcf"), get("fields")
    try:
        fields = _CHECKED.get(("fields", *map(tuple, raw_fields)))
        known_names = ("qcc", *names) in _CHECKED
    except TypeError:  # not lists, or unhashable contents
        return None
    count = len(times)
    if not (fields is not None and known_names and type(ran) is list and type(failed) is list
            and len(ran) == len(failed) == count):
        return None
    small = index + qcs + ran + failed
    try:
        bytes(small)  # each an integer from 0 to 255, in one call
    except (ValueError, TypeError):
        return None
    if not ([*map(type, times + small)].count(int) == count + len(small)  # bools are not
            and [*map(type, values)].count(float) == count
            and math.isfinite(sum(values))  # NaN or an infinity makes the sum one
            and min(times) >= MIN_TIME_US and max(times) <= MAX_TIME_US
            and max(index) < len(fields)
            and (len(names) >= 8 or max(ran) < 1 << len(names))
            and (not any(failed)
                 or not any(map(operator.and_, failed, map(operator.invert, ran))))):
        return None
    return BatchColumns(station, epoch, seq, created_at, adapter[0], adapter[1],
                        {} if source is _NOTHING else source, {} if clock is _NOTHING else clock,
                        names, floor, fields, times, index, values, qcs, ran, failed, {})


_NO_ADAPTER = ["", ""]
_NOTHING: dict = {}


# Field tables and QC name lists already checked: a station sends the same ones in every
# batch. Bounded, so a sender cannot grow it without limit.
_CHECKED: dict[tuple, list] = {}
_CHECKED_LIMIT = 65_536


def _remember(key: tuple, value: list) -> list:
    if len(_CHECKED) >= _CHECKED_LIMIT:
        _CHECKED.clear()
    _CHECKED[key] = value
    return value


def _checked_fields(raw) -> list[tuple[str, str, str, int | None, str | None]]:
    """The field table, each entry made (element, unit, source field, period, source unit);
    the source unit (the unit the station converted from) is there only where it differs."""
    _expect(type(raw) is list, "fields")
    key = ("fields", *map(tuple, raw))  # unhashable contents raise TypeError: malformed
    fields = _CHECKED.get(key)
    if fields is None:
        fields = key[1:]
        _expect(all(len(f) in (4, 5) and type(f[0]) is str and type(f[1]) is str
                    and type(f[2]) is str
                    and (f[3] is None or (type(f[3]) is int and 0 < f[3] < 2**63))
                    and (len(f) == 4 or type(f[4]) is str)
                    for f in fields), "fields")
        fields = _remember(key, [f if len(f) == 5 else (*f, None) for f in fields])
    return fields


MAX_QC_CHECKS = 32


def _qc_columns(data: dict, count: int) -> tuple[list[str], list[int], list[int]]:
    """The optional QC check names and per-reading masks (absent: no QC ran). The caller
    checks the masks' contents."""
    if "qcc" not in data:
        return [], [0] * count, [0] * count
    names, ran, failed = data["qcc"], data["qcr"], data["qcf"]
    _expect(type(names) is list, "qcc")
    key = ("qcc", *names)
    if key not in _CHECKED:
        _expect(0 < len(names) <= MAX_QC_CHECKS
                and all(type(n) is str and 0 < len(n) <= 64 for n in names)
                and len(set(names)) == len(names), "qcc")
        _remember(key, names)
    _expect(type(ran) is list and type(failed) is list
            and len(ran) == len(failed) == count, "qcr/qcf lengths")
    return names, ran, failed


def _no_flag(_index: int) -> None:
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise WireError(f"batch field {what} is malformed")


# --- envelope -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Envelope:
    key_id: str
    body: bytes | None  # one batch or gap report; None for a bundle
    signature: bytes
    bodies: tuple[bytes, ...] = ()  # a bundle's batch bodies, in the signed order

    @property
    def is_bundle(self) -> bool:
        return self.body is None


def signed_message(topic: str, body: bytes) -> bytes:
    return SIGNING_CONTEXT + topic.encode() + b"\n" + body


def bundle_digests(bodies) -> bytes:
    """The SHA-256 digests of a bundle's bodies, concatenated: what its signature covers."""
    return b"".join(hashlib.sha256(body).digest() for body in bodies)


def signed_bundle(topic: str, digests: bytes) -> bytes:
    return BUNDLE_CONTEXT + topic.encode() + b"\n" + digests


def seal(body: bytes, topic: str, key: Ed25519PrivateKey, key_id: str) -> bytes:
    signature = key.sign(signed_message(topic, body))
    return msgpack.packb({"v": PROTOCOL_VERSION, "kid": key_id, "body": body,
                          "sig": signature}, use_bin_type=True)


def seal_bundle(bodies: list[bytes], topic: str, key: Ed25519PrivateKey, key_id: str) -> bytes:
    """Several batch bodies under one signature (for a collector that announced bundles)."""
    signature = key.sign(signed_bundle(topic, bundle_digests(bodies)))
    return msgpack.packb({"v": PROTOCOL_VERSION, "kid": key_id, "bodies": list(bodies),
                          "sig": signature}, use_bin_type=True)


def open_envelope(payload: bytes) -> Envelope:
    """Parse an envelope without verifying it (verification needs the station's keys)."""
    if len(payload) > MAX_ENVELOPE_BYTES:
        raise WireError(f"message of {len(payload)} bytes exceeds {MAX_ENVELOPE_BYTES}")
    try:
        data = msgpack.unpackb(payload, raw=False)
    except Exception as exc:
        raise WireError(f"envelope is not valid msgpack ({type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("v") != PROTOCOL_VERSION:
        raise WireError("envelope is not an obslink v1 envelope")
    key, signature = data.get("kid"), data.get("sig")
    if not (isinstance(key, str) and isinstance(signature, bytes) and len(signature) == 64):
        raise WireError("envelope lacks a key id or a 64-byte signature")
    if "bodies" in data:
        bodies = data["bodies"]
        if "body" in data or not (isinstance(bodies, list)
                                  and 0 < len(bodies) <= MAX_BUNDLE_BATCHES
                                  and all(isinstance(b, bytes) for b in bodies)):
            raise WireError(f"bundle envelope needs 1-{MAX_BUNDLE_BATCHES} batch bodies "
                            "and no single body")
        return Envelope(key, None, signature, tuple(bodies))
    body = data.get("body")
    if not isinstance(body, bytes):
        raise WireError("envelope lacks a body")
    return Envelope(key, body, signature)


def verify(envelope: Envelope, topic: str, public_key: Ed25519PublicKey) -> bool:
    if envelope.is_bundle:
        message = signed_bundle(topic, bundle_digests(envelope.bodies))
    else:
        message = signed_message(topic, envelope.body)
    try:
        public_key.verify(envelope.signature, message)
    except InvalidSignature:
        return False
    return True


# --- acknowledgements -----------------------------------------------------------------------


@dataclass
class Ack:
    """What the collector committed (or refused) of one station's batches of one epoch."""

    epoch: str
    committed: list[int] = field(default_factory=list)
    # (seq, reason) or (seq, reason, key id): with the key that signed what was refused,
    # a station parks only what it signed itself with that key
    refused: list[tuple] = field(default_factory=list)
    gaps: list[int] = field(default_factory=list)  # ids of gap reports now in the catalog
    now: int | None = None  # the collector's clock (µs) when it sent the ack
    bundles: int | None = None  # the most batches the collector takes in one bundle
    keys: list[str] = field(default_factory=list)  # ids of announced keys now registered


def encode_ack(ack: Ack) -> bytes:
    body = {"v": PROTOCOL_VERSION, "epoch": ack.epoch, "committed": ack.committed,
            "refused": [list(item) for item in ack.refused]}
    if ack.gaps:
        body["gaps"] = ack.gaps
    if ack.now is not None:
        body["now"] = ack.now
    if ack.bundles:
        body["bundles"] = ack.bundles
    if ack.keys:
        body["keys"] = ack.keys
    return msgpack.packb(body, use_bin_type=True)


def decode_ack(payload: bytes) -> Ack:
    try:
        data = msgpack.unpackb(payload, raw=False)
        if not isinstance(data, dict) or data.get("v") != PROTOCOL_VERSION:
            raise WireError("not an obslink v1 ack")
        committed = [int(s) for s in data["committed"]]
        refused = [(int(item[0]), str(item[1])) + ((str(item[2]),) if len(item) > 2 else ())
                   for item in data["refused"]]
        gaps = [int(g) for g in data.get("gaps", [])]
        now, bundles = data.get("now"), data.get("bundles")
        keys = [str(k) for k in data.get("keys", [])]
        return Ack(str(data["epoch"]), committed, refused, gaps,
                   int(now) if _is_int(now) else None,
                   bundles if _is_int(bundles) and bundles > 1 else None, keys)
    except WireError:
        raise
    except Exception as exc:
        raise WireError(f"malformed ack ({type(exc).__name__}: {exc})") from None


# --- gap reports ----------------------------------------------------------------------------


@dataclass
class GapReport:
    """Batches a station's outbox evicted (a cap was reached): data the centre will never
    get, reported so that the catalog shows the hole and why."""

    station: str
    epoch: str
    id: int  # the outbox's gap id; (station, epoch, id) is the report's identity
    first_seq: int
    last_seq: int
    batches: int
    readings: int
    first_observed: int | None  # µs, UTC
    last_observed: int | None
    reason: str  # size-cap, retention, disk-full
    at: int  # µs, when the outbox evicted them


GAP_FIELDS = ("station", "epoch", "id", "first_seq", "last_seq", "batches", "readings",
              "first_observed", "last_observed", "reason", "at")


def encode_gap(gap: GapReport) -> bytes:
    body = {"v": PROTOCOL_VERSION, "kind": "gap"}
    body.update({name: getattr(gap, name) for name in GAP_FIELDS})
    return msgpack.packb(body, use_bin_type=True)


def decode_gap(body: bytes) -> GapReport:
    try:
        data = msgpack.unpackb(body, raw=False)
    except Exception as exc:
        raise WireError(f"gap report is not valid msgpack ({type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("v") != PROTOCOL_VERSION \
            or data.get("kind") != "gap":
        raise WireError("not an obslink v1 gap report")
    try:
        gap = GapReport(**{name: data[name] for name in GAP_FIELDS})
    except KeyError as exc:
        raise WireError(f"gap report lacks {exc}") from None
    check_station_id(gap.station)
    _expect(isinstance(gap.epoch, str) and 0 < len(gap.epoch) <= 64, "epoch")
    _expect(all(_is_int(getattr(gap, name)) and getattr(gap, name) >= 0
                for name in ("id", "first_seq", "last_seq", "batches", "readings")), "counts")
    _expect(all(value is None or _is_int(value) for value in
                (gap.first_observed, gap.last_observed)) and _is_int(gap.at), "times")
    _expect(isinstance(gap.reason, str) and 0 < len(gap.reason) <= 64, "reason")
    return gap


# --- key rotation ---------------------------------------------------------------------------


@dataclass
class KeyRotation:
    """A station announces its next key, signed with its current one (on its key topic)."""

    station: str
    epoch: str  # the announcing outbox's epoch: the collector's ack answers under it
    key_id: str
    public_key: bytes  # raw 32-byte Ed25519 public key
    at: int  # µs


def encode_key_rotation(rotation: KeyRotation) -> bytes:
    return msgpack.packb({"v": PROTOCOL_VERSION, "kind": "key", "station": rotation.station,
                          "epoch": rotation.epoch, "kid": rotation.key_id,
                          "key": rotation.public_key, "at": rotation.at}, use_bin_type=True)


def decode_key_rotation(body: bytes) -> KeyRotation:
    try:
        data = msgpack.unpackb(body, raw=False)
    except Exception as exc:
        raise WireError(f"key announcement is not valid msgpack ({type(exc).__name__})") \
            from None
    if not isinstance(data, dict) or data.get("v") != PROTOCOL_VERSION \
            or data.get("kind") != "key":
        raise WireError("not an obslink v1 key announcement")
    try:
        rotation = KeyRotation(data["station"], data["epoch"], data["kid"], data["key"],
                               data["at"])
    except KeyError as exc:
        raise WireError(f"key announcement lacks {exc}") from None
    check_station_id(rotation.station)
    _expect(isinstance(rotation.epoch, str) and 0 < len(rotation.epoch) <= 64, "epoch")
    _expect(isinstance(rotation.public_key, bytes) and len(rotation.public_key) == 32, "key")
    _expect(isinstance(rotation.key_id, str) and 0 < len(rotation.key_id) <= 64, "kid")
    _expect(_is_int(rotation.at), "at")
    return rotation
