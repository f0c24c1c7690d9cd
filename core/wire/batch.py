"""The batch: a station's readings as they travel, signed inside an envelope
(docs/protocol.md, "Batch"). Readings are columnar with a table of distinct fields.

``decode_batch_columns`` runs once per batch at the collector: its usual case is checked in a
few whole-column expressions, anything unusual the thorough way with a precise error.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import msgpack

from obslink.errors import WireError
from obslink.readings import MAX_TIME_US, MIN_TIME_US, Reading
from obslink.wire import compact
from obslink.wire.checks import expect
from obslink.wire.topics import check_station_id

BATCH_VERSION = 1
MAX_QC_CHECKS = 32


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
        "v": BATCH_VERSION, "station": batch.station, "epoch": batch.epoch,
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


def is_v2_body(body: bytes) -> bool:
    """A v2 body is a msgpack array of 15 (a v1 body is a map)."""
    return body[:1] == b"\x9f"


def decode_batch_columns(body: bytes, context: bytes | list | None = None) -> BatchColumns:
    """Decode and validate a batch body (v1, or v2 with its ``context``) into its columns;
    malformed input raises WireError, nothing else. Runs once per batch at the collector, so
    checks are whole-column (in C) and a field table or QC name list seen before is not
    checked again."""
    if is_v2_body(body):
        if context is None:
            raise WireError("a v2 batch body without its context")
        return decode_v2_columns(body, context)
    try:
        data = msgpack.unpackb(body, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise WireError(f"batch body is not valid msgpack ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise WireError("batch body is not a map")
    return _usual_batch(data) or _checked_batch(data)


def decode_v2_columns(body: bytes | list, context: bytes | list) -> BatchColumns:
    """A v2 body (its bytes, or as msgpack decoded them) with its context, checked exactly as
    the v1 body it stands for would be."""
    data = compact.decode_body(body, context)
    return _usual_batch(data) or _checked_batch(data)


def _checked_batch(data: dict) -> BatchColumns:
    """Every check, one at a time, so that an error names the field that failed."""
    if data.get("v") != BATCH_VERSION:
        raise WireError(f"unsupported batch version {data.get('v')!r}; this collector speaks "
                        f"version {BATCH_VERSION}")
    try:
        station = check_station_id(data["station"])
        if ("station", station) not in _CHECKED:
            _remember(("station", station), [])
        epoch, seq, created_at = data["epoch"], data["seq"], data["created_at"]
        expect(type(epoch) is str and 0 < len(epoch) <= 64, "epoch")
        expect(type(seq) is int and 0 <= seq < 2**63, "seq")
        expect(type(created_at) is int and MIN_TIME_US <= created_at <= MAX_TIME_US,
                "created_at")
        floor = data.get("floor")
        expect(floor is None or (type(floor) is int and 0 <= floor <= seq), "floor")
        adapter = data.get("adapter", ["", ""])
        expect(type(adapter) is list and len(adapter) == 2
                and type(adapter[0]) is str and type(adapter[1]) is str, "adapter")
        source, clock = data.get("source", {}), data.get("clock", {})
        expect(type(source) is dict and type(clock) is dict, "source/clock")
        fields = _checked_fields(data["fields"])
        times, index, values, qcs = data["t"], data["f"], data["val"], data["qc"]
        expect(type(times) is list and type(index) is list and type(values) is list
                and type(qcs) is list, "columns")
        count = len(times)
        expect(len(index) == len(values) == len(qcs) == count, "column lengths")
        qc_checks, ran, failed = _qc_columns(data, count)
        if count:
            expect(set(map(type, chain(times, index, qcs, ran, failed))) == {int},
                    "t, f, qc, qcr or qcf (integers expected)")
            expect(min(times) >= MIN_TIME_US and max(times) <= MAX_TIME_US,
                    "t (a time outside the years 1 to 9999)")
            expect(min(index) >= 0 and max(index) < len(fields), "f")
            expect(min(qcs) >= 0 and max(qcs) <= 255, "qc")
            if qc_checks:  # qcf's bits are a subset of qcr's, so qcr's bounds cover both
                expect(min(ran) >= 0 and max(ran) < 1 << len(qc_checks), "qcr")
                expect(not any(map(operator.and_, failed, map(operator.invert, ran))),
                        "qcf (a check flagged a reading it did not run on)")
            value_types = set(map(type, values))
            expect(value_types <= {int, float, type(None)}, "val")
            if int in value_types:  # msgpack gives ints for whole numbers a sender packed
                values = [float(v) if type(v) is int else v for v in values]
            expect(all(map(math.isfinite, [v for v in values if v is not None])),
                    "val (NaN or infinity: a missing value travels as nil with a flag)")
        flags = data.get("flags", [])
        if flags:
            flags = dict(flags)
            expect(all(type(i) is int and type(flag) is str for i, flag in flags.items()),
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
    if not (get("v") == BATCH_VERSION and type(station) is str
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
    expect(type(raw) is list, "fields")
    key = ("fields", *map(tuple, raw))  # unhashable contents raise TypeError: malformed
    fields = _CHECKED.get(key)
    if fields is None:
        fields = key[1:]
        expect(all(len(f) in (4, 5) and type(f[0]) is str and type(f[1]) is str
                    and type(f[2]) is str
                    and (f[3] is None or (type(f[3]) is int and 0 < f[3] < 2**63))
                    and (len(f) == 4 or type(f[4]) is str)
                    for f in fields), "fields")
        fields = _remember(key, [f if len(f) == 5 else (*f, None) for f in fields])
    return fields



def _qc_columns(data: dict, count: int) -> tuple[list[str], list[int], list[int]]:
    """The optional QC check names and per-reading masks (absent: no QC ran). The caller
    checks the masks' contents."""
    if "qcc" not in data:
        return [], [0] * count, [0] * count
    names, ran, failed = data["qcc"], data["qcr"], data["qcf"]
    expect(type(names) is list, "qcc")
    key = ("qcc", *names)
    if key not in _CHECKED:
        expect(0 < len(names) <= MAX_QC_CHECKS
                and all(type(n) is str and 0 < len(n) <= 64 for n in names)
                and len(set(names)) == len(names), "qcc")
        _remember(key, names)
    expect(type(ran) is list and type(failed) is list
            and len(ran) == len(failed) == count, "qcr/qcf lengths")
    return names, ran, failed


def _no_flag(_index: int) -> None:
    return None
