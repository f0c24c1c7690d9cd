"""Protocol v2's batch body and batch context (docs/protocol.md, "Version 2").

A v2 batch says once, in a *context*, what stays the same from one batch to the next (the
station, the outbox epoch, the adapter, the source's name and stream, the QC check names,
the field table) and refers to it by the first 8 bytes of its SHA-256; the body holds only
what changes. Times travel as a base and runs, values as decimal-scaled integers wherever
that is exact, masks as one number where all readings share it. Decoding gives exactly the
map a v1 body decodes to, so both versions go through the same checks afterwards.

Nothing is lost: a batch the compact form cannot carry bit for bit raises
:class:`NotCompact`, and the agent sends that one as v1.
"""

from __future__ import annotations

import hashlib
import math
import struct
from functools import lru_cache
from itertools import accumulate, chain, repeat
from typing import Any

import msgpack

from obslink.errors import WireError

BODY_VERSION = 2
BODY_FIELDS = 15  # a v2 body is a msgpack array of 15 (a v1 body is a map)
CONTEXT_REF_BYTES = 8
_SOURCE_KEYS = {"name", "stream", "start", "end", "sha256"}
# every key of a v1 batch map (docs/protocol.md, "Batch"); one v2 does not know goes as v1
_BATCH_KEYS = {"v", "station", "epoch", "seq", "created_at", "clock", "adapter", "source",
               "fields", "t", "f", "val", "qc", "flags", "floor", "qcc", "qcr", "qcf"}
_CLOCK_KEYS = ("synced", "offset_ms", "error_ms", "offset_source")
# offset sources as numbers (any other text travels as itself)
_OFFSET_SOURCES = ("collector",)
_POW10 = [10 ** k for k in range(16)]
_MAX_MANTISSA = 1 << 58  # a scaled value (mantissa << 4 | scale) stays a signed 64-bit int


class NotCompact(Exception):
    """The batch holds something v2 cannot carry exactly (send it as v1)."""


def context_ref(context: bytes) -> bytes:
    """How a body names its context: the first 8 bytes of the context's SHA-256 (a lookup
    key only: the signature covers the whole digest)."""
    return hashlib.sha256(context).digest()[:CONTEXT_REF_BYTES]


# -- numbers ---------------------------------------------------------------------------------

def decimal_digits(value: float) -> int | None:
    """The digits after the point of ``value``'s shortest decimal form (None for one with an
    exponent, -0.0, NaN or an infinity)."""
    text = repr(value)
    if "e" in text or "n" in text or text == "-0.0":
        return None
    fraction = text.partition(".")[2]
    return 0 if fraction == "0" else len(fraction)


def scaled(value: float, scale: int) -> int | None:
    """The integer m with m / 10**scale == value exactly, if there is one that fits."""
    product = value * _POW10[scale]
    if not -_MAX_MANTISSA < product < _MAX_MANTISSA:  # NaN and infinities included
        return None
    mantissa = round(product)
    if -_MAX_MANTISSA < mantissa < _MAX_MANTISSA and mantissa / _POW10[scale] == value \
            and (mantissa or math.copysign(1, value) > 0):
        return mantissa
    return None


def raw_float(value: float) -> bytes:
    """A float's IEEE bits: 4 bytes where float32 holds it exactly, else 8."""
    double = struct.pack(">d", value)
    try:
        single = struct.pack(">f", value)
    except OverflowError:
        return double
    return single if struct.pack(">d", struct.unpack(">f", single)[0]) == double else double


def pack_float(value: float) -> int | bytes:
    """A float alone as ``mantissa << 4 | k`` (value = mantissa / 10**k, exactly) when its
    shortest decimal form allows, else its IEEE bits."""
    digits = decimal_digits(value)
    if digits is not None and digits < 16:
        mantissa = scaled(value, digits)
        if mantissa is not None:
            return mantissa << 4 | digits
    return raw_float(value)


def unpack_float(packed) -> float:
    if type(packed) is int:
        return (packed >> 4) / _POW10[packed & 15]
    return raw_value(packed)


def _pack_time(us: int) -> int:
    """µs as ``m << 4 | k`` with us = m * 10**k: whole minutes take a byte as a step."""
    scale = 0
    while scale < 15 and us and us % _POW10[scale + 1] == 0:
        scale += 1
    return (us // _POW10[scale]) << 4 | scale


def _unpack_time(packed: int) -> int:
    return (packed >> 4) * _POW10[packed & 15]


def _optional_float(value):
    if value is None:
        return None
    if type(value) is not float:
        raise NotCompact("a clock number that is not a float")
    return pack_float(value)


# -- context -----------------------------------------------------------------------------------

def encode_context(batch: dict) -> bytes:
    """The context of a v1 batch map: what its successors share."""
    source = batch.get("source", {})
    adapter = batch.get("adapter", ["", ""])
    return msgpack.packb([batch["station"], batch["epoch"], adapter[0], adapter[1],
                          source.get("name"), source.get("stream"), batch.get("qcc") or [],
                          batch["fields"]], use_bin_type=True)


@lru_cache(maxsize=4096)  # a station names the same context batch after batch
def decode_context(context: bytes) -> list:
    """A context's array (shared: not to be changed)."""
    try:
        data = msgpack.unpackb(context, raw=False)
    except Exception as exc:
        raise WireError(f"v2 batch context is not valid msgpack ({type(exc).__name__})"
                        ) from None
    if not (type(data) is list and len(data) == 8 and type(data[6]) is list
            and type(data[7]) is list):
        raise WireError("v2 batch context is not [station, epoch, adapter, version, source "
                        "name, stream, QC checks, fields]")
    return data


# -- body --------------------------------------------------------------------------------------

def encode_body(batch: dict) -> tuple[bytes, bytes]:
    """(v2 body, its context) of a batch given as its v1 map (as msgpack decodes a v1 body).
    Raises NotCompact for anything v2 cannot carry exactly."""
    try:
        return _encode_body(batch)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise NotCompact(f"{type(exc).__name__}: {exc}") from None


def _encode_body(batch: dict) -> tuple[bytes, bytes]:
    if not set(batch) <= _BATCH_KEYS:
        raise NotCompact(f"batch keys v2 does not know: {sorted(set(batch) - _BATCH_KEYS)}")
    source, clock = batch.get("source", {}), batch.get("clock", {})
    if not set(source) <= _SOURCE_KEYS or not set(clock) <= set(_CLOCK_KEYS):
        raise NotCompact("a source or clock key v2 does not know")
    if any(v is None for v in source.values()) or ("start" in source) != ("end" in source) \
            or not all(type(source.get(k, 0)) is int for k in ("start", "end")):
        raise NotCompact("a source position v2 cannot carry")
    if not all(type(source.get(k, "")) is str for k in ("name", "stream")):
        raise NotCompact("a source name that is not text")
    times, index, values = batch["t"], batch["f"], batch["val"]
    count, fields = len(times), batch["fields"]
    context = encode_context(batch)
    t0 = times[0] if count else 0
    runs: list | None = None
    if times.count(t0) != count:
        runs, previous, length = [], t0, 0
        for t in times:
            if t != previous:
                runs += [length, _pack_time(t - previous)]
                previous, length = t, 0
            length += 1
        runs.append(length)
    qcr, qcf = batch.get("qcr"), batch.get("qcf")
    if "qcc" in batch:
        ran = qcr[0] if count and qcr.count(qcr[0]) == count else qcr
        failed = qcf if any(qcf) else None
    else:
        ran = failed = None
    qcs = batch["qc"]
    start = source.get("start")
    body = [
        context_ref(context), batch["seq"],
        None if batch.get("floor") is None else batch["seq"] - batch["floor"],
        batch["created_at"] - t0,
        _pack_clock(clock),
        None if start is None and "sha256" not in source
        else [start, None if start is None else source["end"] - start, source.get("sha256")],
        _pack_time(t0), runs,
        None if fields and index == [i % len(fields) for i in range(count)] else index,
        *_pack_values([None if v is None else float(v) for v in values], index, len(fields)),
        bytes(qcs) if any(qcs) else None, ran, failed,
        [list(item) for item in batch["flags"]] or None if batch.get("flags") else None,
    ]
    return msgpack.packb(body, use_bin_type=True), context


def _pack_values(values: list, index: list[int], width: int) -> tuple:
    """(scales, packed values): values as integers over a power of ten (per field, the most
    digits any of its values needs; or one for all, where that packs smaller), so that a
    value costs one to three bytes, not nine; a value no such integer gives exactly travels
    as its IEEE bits, a missing one as nil."""
    scales = [0] * width
    for value, field in zip(values, index):
        if value is not None:
            digits = decimal_digits(value)
            if digits is not None and scales[field] < digits < 16:
                scales[field] = digits
    per_field = [_packed_value(v, scales[f]) for v, f in zip(values, index)]
    if not width or scales.count(scales[0]) == width:
        return (scales[0] if width else 0), per_field
    common = max(scales)
    shared = [_packed_value(v, common) for v in values]
    if len(msgpack.packb([common, shared])) < len(msgpack.packb([scales, per_field])):
        return common, shared
    return scales, per_field


def _packed_value(value: float | None, scale: int):
    if value is None:
        return None
    mantissa = scaled(value, scale)
    return raw_float(value) if mantissa is None else mantissa


def _pack_clock(clock: dict):
    """[presence mask, synced, offset_ms, error_ms, offset_source] with the absent left out;
    nil for the agent's default (nothing known)."""
    if clock == {"synced": None, "offset_ms": None}:
        return None
    mask, items = 0, []
    for bit, key in enumerate(_CLOCK_KEYS):
        if key in clock:
            mask |= 1 << bit
            value = clock[key]
            if key == "synced":
                if value is not None and type(value) is not bool:
                    raise NotCompact("clock synced is not a boolean")
                items.append(value)
            elif key == "offset_source":
                if type(value) is not str:
                    raise NotCompact("clock offset_source is not text")
                items.append(_OFFSET_SOURCES.index(value) if value in _OFFSET_SOURCES
                             else value)
            else:
                items.append(_optional_float(value))
    return [mask, *items]


def _unpack_clock(packed) -> dict:
    if packed is None:
        return {"synced": None, "offset_ms": None}
    mask, items = packed[0], iter(packed[1:])
    clock = {}
    for bit, key in enumerate(_CLOCK_KEYS):
        if mask >> bit & 1:
            value = next(items)
            if key in ("offset_ms", "error_ms") and value is not None:
                value = unpack_float(value)
            elif key == "offset_source" and type(value) is int:
                value = _OFFSET_SOURCES[value]
            clock[key] = value
    return clock


def _unpack_values(values: list, index: list[int], scales, width: int) -> list:
    if type(scales) is int:
        divisor = _POW10[scales]
        return [m / divisor if m.__class__ is int else None if m is None else raw_value(m)
                for m in values]
    if len(scales) != width:
        raise WireError("v2 batch body has not one scale per field")
    divisors = [_POW10[k] for k in scales]
    return [m / divisors[f] if m.__class__ is int else None if m is None else raw_value(m)
            for m, f in zip(values, index)]


def raw_value(packed) -> float:
    if type(packed) is bytes and len(packed) in (4, 8):
        return struct.unpack(">f" if len(packed) == 4 else ">d", packed)[0]
    raise WireError(f"a v2 value is {type(packed).__name__}, not an integer, nil or 4/8 "
                    "bytes")


def body_ref(body: bytes) -> tuple[list, bytes]:
    """A v2 body as its decoded list, and the reference to its context."""
    try:
        data = msgpack.unpackb(body, raw=False)
    except Exception as exc:
        raise WireError(f"v2 batch body is not valid msgpack ({type(exc).__name__})") from None
    if not (type(data) is list and len(data) == BODY_FIELDS and type(data[0]) is bytes
            and len(data[0]) == CONTEXT_REF_BYTES):
        raise WireError(f"v2 batch body is not a list of {BODY_FIELDS} starting with its "
                        "context reference")
    return data, data[0]


def decode_body(body: list | bytes, context: list | bytes) -> dict:
    """The v1 map a v2 body and its context stand for (checked afterwards as v1 is)."""
    if isinstance(body, bytes):
        body = body_ref(body)[0]
    if isinstance(context, bytes):
        context = decode_context(context)
    try:
        (_ref, seq, back, created, clock, source_position, t0, runs, index, scales, values,
         qcs, ran, failed, flags) = body
        station, epoch, adapter, version, source_name, stream, qcc, fields = context
        t0 = _unpack_time(t0)
        count = len(values)
        if runs is None:
            times = [t0] * count
        else:
            starts = accumulate(map(_unpack_time, runs[1::2]), initial=t0)
            times = list(chain.from_iterable(map(repeat, starts, runs[0::2])))
        if index is None:
            width = len(fields)
            index = list(range(width)) * (count // width) + list(range(count % width))
        data: dict[str, Any] = {
            "v": 1, "station": station, "epoch": epoch, "seq": seq,
            "created_at": created + t0, "clock": _unpack_clock(clock),
            "adapter": [adapter, version], "fields": fields, "t": times, "f": index,
            "val": _unpack_values(values, index, scales, len(fields)),
            "qc": list(qcs) if qcs is not None else [0] * count,
            "flags": flags or [],
        }
        source: dict[str, Any] = {}
        if source_name is not None:
            source["name"] = source_name
        if stream is not None:
            source["stream"] = stream
        if source_position is not None:
            start, length, digest = source_position
            if start is not None:
                source["start"], source["end"] = start, start + length
            if digest is not None:
                source["sha256"] = digest
        data["source"] = source
        if back is not None:
            data["floor"] = seq - back
        if qcc:
            data["qcc"] = qcc
            data["qcr"] = [ran] * count if type(ran) is int else ran
            data["qcf"] = failed if failed is not None else [0] * count
    except WireError:
        raise
    except Exception as exc:  # a wrong shape anywhere: one precise kind of error
        raise WireError(f"v2 batch body is malformed ({type(exc).__name__}: {exc})") from None
    return data
