"""Protocol v2 (docs/protocol.md, "Version 2"): compact bodies and their contexts round-trip
bit for bit, the envelope and its column form, what the collector refuses, and what the
catalog keeps so that a stored v2 batch verifies with nothing else."""

from __future__ import annotations

import hashlib
import math
import struct
import zlib

import msgpack
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from paho.mqtt.client import MQTTMessage

from obslink import wire
from obslink.keys import key_id, load_private_key, public_bytes, write_keypair
from obslink.readings import MAX_TIME_US, MIN_TIME_US, Reading, now_us
from obslink.server.catalog import AcceptedBatch, Refusal, SignedBundle, Station, open_catalog
from obslink.server.catalog.self_check import verify_catalog
from obslink.server.verify import verify_message
from obslink.server.catalog.provenance_bundle import export_bundle
from obslink.server.mqtt_link import is_live
from obslink.server.verify_v2 import Contexts
from obslink.wire import columns, compact
from tests.test_provenance import _recipe, _run_recipe

TOPIC_V1 = wire.data_topic("net", "S2")
TOPIC = wire.data_topic_v2("net", "S2")
T0 = 1_780_000_020 * 1_000_000  # a whole minute
FIELDS = [("air_temperature", "degC", "AirTC_Avg", None, "Deg C"),
          ("relative_humidity", "%", "RH", None, None),
          ("precipitation_amount", "mm", "Rain_mm_Tot", 60, None)]


def bits(value):
    return None if value is None else struct.pack(">d", value)


def record_batch(seq: int, values=(21.347, 64.2, 0.0), observed=T0, flags=(None,) * 3,
                 floor: int | None = 1, source=None, clock=None) -> wire.Batch:
    readings = [Reading(observed, element, value, unit, field, flag, 0 if value is not None
                        else 8, period, 0b11 if value is not None else 0, 0, source_unit)
                for (element, unit, field, period, source_unit), value, flag
                in zip(FIELDS, values, flags)]
    return wire.Batch("S2", "e2", seq, observed + 4_321_987, readings, "toa5", "1.0",
                      source if source is not None else
                      {"name": "logger", "stream": "S2_Min1.dat", "start": seq % 10**6 * 80,
                       "end": seq % 10**6 * 80 + 80,
                       "sha256": hashlib.sha256(b"%d" % seq).digest()},
                      clock if clock is not None else
                      {"synced": True, "offset_ms": 0.012, "error_ms": 0.5},
                      ["range", "step"], floor)


def v1_map(batch: wire.Batch) -> dict:
    return msgpack.unpackb(wire.encode_batch(batch), raw=False)


def assert_same(decoded: dict, original: dict) -> None:
    """Everything a v1 map says, with floats compared bit for bit."""
    for key in ("station", "epoch", "seq", "created_at", "clock", "adapter", "source",
                "t", "f", "qc", "floor", "qcc", "qcr", "qcf"):
        assert decoded.get(key) == original.get(key), key
    assert [list(f) for f in decoded["fields"]] == [list(f) for f in original["fields"]]
    assert list(map(bits, decoded["val"])) == list(map(bits, [
        None if v is None else float(v) for v in original["val"]]))
    assert [list(x) for x in decoded["flags"]] == [list(x) for x in original["flags"]]


# -- bodies round-trip bit for bit -------------------------------------------------------------

def nan_with_payload(payload: int) -> float:
    return struct.unpack(">d", struct.pack(">Q", 0x7FF0_0000_0000_0000 | payload))[0]


VALUES = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(1, 2**52 - 1).map(nan_with_payload),
    st.integers(-10**7, 10**7).map(lambda m: m / 1000),  # what loggers write
    st.decimals(-1e6, 1e6, places=2, allow_nan=False).map(float))
TIMES = st.integers(MIN_TIME_US, MAX_TIME_US)
FIELD = st.tuples(st.sampled_from(["air_temperature", "wind_speed", "x"]),
                  st.sampled_from(["degC", "m/s", ""]), st.text(max_size=8),
                  st.none() | st.integers(1, 2**62), st.none() | st.text(max_size=4))


@st.composite
def batches(draw) -> wire.Batch:
    fields = draw(st.lists(FIELD, min_size=1, max_size=5))
    count = draw(st.integers(0, 40))
    base = draw(TIMES)
    readings = []
    for i in range(count):
        element, unit, field, period, source_unit = fields[draw(st.integers(0, len(fields) - 1))
                                                           if draw(st.booleans())
                                                           else i % len(fields)]
        observed = draw(st.sampled_from([base, base]) | TIMES
                        | st.integers(0, 100).map(lambda m: min(MAX_TIME_US,
                                                                base + m * 60_000_000)))
        ran = draw(st.integers(0, 7))
        readings.append(Reading(observed, element, draw(VALUES), unit, field,
                                draw(st.none() | st.text(max_size=4)), draw(st.integers(0, 255)),
                                period, ran, ran & draw(st.integers(0, 7)), source_unit))
    source = draw(st.sampled_from([{}, {"name": "n"}, {
        "name": "logger", "stream": "f.dat", "start": 10, "end": 90, "sha256": b"\x01" * 32}]))
    clock = draw(st.sampled_from([{"synced": None, "offset_ms": None},
                                  {"synced": True, "offset_ms": -0.25, "error_ms": 1e-9},
                                  {"synced": False, "offset_ms": 1234.5,
                                   "offset_source": "collector"},
                                  {"synced": False, "offset_ms": -0.0,
                                   "offset_source": "ntp-ish"}]))
    seq = draw(st.integers(0, 2**63 - 1))
    return wire.Batch("S2", draw(st.text(min_size=1, max_size=64)), seq,
                      draw(TIMES), readings, "toa5", "1.0", source, clock,
                      draw(st.sampled_from([[], ["range", "step", "persistence"]])),
                      draw(st.none() | st.integers(0, seq)))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
@example(record_batch(7))
@example(record_batch(1, values=(-0.0, nan_with_payload(0xDEAD), 5e-324)))
@example(record_batch(1, values=(1.7976931348623157e308, 0.1 + 0.2, -math.inf)))
@example(record_batch(2**63 - 1, observed=MAX_TIME_US, floor=None))
@example(record_batch(0, observed=MIN_TIME_US, values=(None, None, None),
                      flags=("NAN", "NAN", None)))
def test_a_v2_body_gives_back_every_value_time_flag_and_mask_bit_for_bit(batch):
    original = v1_map(batch)
    body, context = compact.encode_body(original)
    assert_same(compact.decode_body(body, context), original)
    # as bytes, or as msgpack decoded them (the collector's way)
    assert_same(compact.decode_body(msgpack.unpackb(body, raw=False),
                                    msgpack.unpackb(context, raw=False)), original)


@settings(max_examples=100, deadline=None)
@given(st.lists(batches(), min_size=2, max_size=6))
def test_the_column_form_gives_back_each_body_byte_for_byte(many):
    bodies = [compact.encode_body(v1_map(batch))[0] for batch in many]
    form = columns.to_columns(bodies)
    if form is not None:  # else the sender packs the bodies as they are
        assert columns.from_columns(msgpack.unpackb(msgpack.packb(form), raw=False)) == bodies


def test_a_record_of_whole_minutes_and_logger_decimals_packs_small():
    """The usual live record: one time, fields in the context's order, three decimals."""
    batch = record_batch(9)
    body, _context = compact.encode_body(v1_map(batch))
    assert len(body) * 4 < len(wire.encode_batch(batch))


def test_what_v2_cannot_carry_exactly_is_left_to_v1():
    with pytest.raises(wire.NotCompact):  # a source key v2 does not know
        compact.encode_body(v1_map(record_batch(1, source={"name": "a", "line": 3})))
    with pytest.raises(wire.NotCompact):  # a clock offset that is not a float
        compact.encode_body(v1_map(record_batch(1, clock={"synced": True, "offset_ms": 3})))
    with pytest.raises(wire.NotCompact):  # a batch key of a later v1
        compact.encode_body({**v1_map(record_batch(1)), "later": 1})


# -- the envelope and the collector -------------------------------------------------------------

@pytest.fixture(scope="module")
def key():
    return Ed25519PrivateKey.generate()


def keys_of(key, status="active"):
    entry = {key_id(key.public_key()): (public_bytes(key.public_key()), status)}
    return lambda station: entry if station == "S2" else {}


def compact_pairs(*many: wire.Batch) -> list[tuple[bytes, bytes]]:
    return [tuple(reversed(compact.encode_body(v1_map(batch)))) for batch in many]


def test_a_v2_message_gives_the_collector_the_batches_a_v1_message_would(key):
    many = [record_batch(seq, values=(21.347 + seq * 0.013, 64.2 - seq * 0.7, 0.0),
                         observed=T0 + seq * 60_000_000) for seq in range(1, 9)]
    pairs = compact_pairs(*many)
    payload = wire.sign_v2(pairs, [pairs[0][0]], TOPIC, key, key_id(key.public_key()))
    outcomes = verify_message(TOPIC, payload, 0, keys_of(key), None, Contexts(lambda *_: None))
    v1 = verify_message(TOPIC_V1, wire.sign_bundle([wire.encode_batch(b) for b in many],
                                                   TOPIC_V1, key, key_id(key.public_key())),
                        0, keys_of(key))
    assert all(isinstance(o, AcceptedBatch) for o in outcomes + v1)
    assert [o.batch for o in outcomes] == [o.batch for o in v1]
    assert isinstance(outcomes[0].bundle, SignedBundle) and outcomes[0].context == pairs[0][0]
    assert wire.open_message(payload).live is False
    flags = msgpack.unpackb(payload)[0]
    assert flags & 4 and flags & 2  # sent in column form, deflated: the smallest here


def test_a_message_naming_a_context_the_collector_lacks_asks_for_it(key):
    pairs = compact_pairs(record_batch(1))
    payload = wire.sign_v2(pairs, [], TOPIC, key, key_id(key.public_key()), live=True)
    assert wire.is_live_v2(payload)
    contexts = Contexts(lambda *_: None)
    [refusal] = verify_message(TOPIC, payload, 0, keys_of(key), None, contexts)
    assert isinstance(refusal, Refusal) and refusal.reason == "unknown-context"
    assert refusal.context_ref == wire.context_ref(pairs[0][0]) and not refusal.verified
    with_context = wire.sign_v2(pairs, [pairs[0][0]], TOPIC, key, key_id(key.public_key()))
    assert isinstance(verify_message(TOPIC, with_context, 0, keys_of(key), None,
                                     contexts)[0], AcceptedBatch)
    # once held, a message without it is understood
    assert isinstance(verify_message(TOPIC, payload, 0, keys_of(key), None, contexts)[0],
                      AcceptedBatch)


def refusal_reasons(topic, payload, keys) -> list[str]:
    return [getattr(o, "reason", "accepted") for o in verify_message(
        topic, payload, 0, keys, None, Contexts(lambda *_: None))]


def test_the_collector_refuses_what_does_not_check_out(key):
    pairs = compact_pairs(record_batch(1), record_batch(2))
    kid = key_id(key.public_key())
    good = wire.sign_v2(pairs, [pairs[0][0]], TOPIC, key, kid)
    assert refusal_reasons(TOPIC, good, keys_of(key)) == ["accepted", "accepted"]
    # on another protocol's topic, or another station's
    assert refusal_reasons(TOPIC_V1, good, keys_of(key)) == ["wrong-topic"]
    other = wire.data_topic_v2("net", "S3")
    assert refusal_reasons(other, wire.sign_v2(pairs, [pairs[0][0]], other, key, kid),
                           lambda s: keys_of(key)("S2")) == ["wrong-topic", "wrong-topic"]
    # signed by another key, or altered after signing
    stranger = Ed25519PrivateKey.generate()
    forged = wire.sign_v2(pairs, [pairs[0][0]], TOPIC, stranger, kid)
    assert refusal_reasons(TOPIC, forged, keys_of(key)) == ["bad-signature"]
    flags, prefix, signature, inner = msgpack.unpackb(good, raw=False)
    contexts, *bodies = msgpack.unpackb(zlib.decompress(inner, -15), raw=False) \
        if flags & 2 else msgpack.unpackb(inner, raw=False)
    if isinstance(bodies[0], list):  # the column form
        bodies = columns.from_columns(bodies[0])
    altered = compact_pairs(record_batch(1, values=(21.348, 64.2, 0.0)))[0][1]
    tampered = msgpack.packb([0x20, prefix, signature, msgpack.packb(
        [contexts, altered, bodies[1]])])
    assert refusal_reasons(TOPIC, tampered, keys_of(key)) == ["bad-signature"]
    # a revoked key's batches are refused for good, acknowledged so the station parks them
    revoked = verify_message(TOPIC, good, 0, keys_of(key, "revoked"), None,
                             Contexts(lambda *_: None))
    assert [(r.reason, r.seq, r.verified) for r in revoked] == [("revoked-key", 1, True),
                                                                ("revoked-key", 2, True)]


def test_a_deflated_message_may_not_inflate_without_bound(key):
    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    inner = bomb.compress(b"\x00" * (wire.MAX_ENVELOPE_BYTES + 1)) + bomb.flush()
    payload = msgpack.packb([0x20 | 2, b"\x00\x00", b"\x00" * 64, inner])
    assert refusal_reasons(TOPIC, payload, keys_of(Ed25519PrivateKey.generate())) == \
        ["malformed"]


# -- the catalog keeps what a stored v2 batch needs ------------------------------------------

def commit_v2(catalog, key, many: list[wire.Batch], bundle: bool):
    pairs = compact_pairs(*many)
    payload = wire.sign_v2(pairs, [context for context, _ in pairs], TOPIC, key,
                           key_id(key.public_key()))
    outcomes = verify_message(TOPIC, payload, now_us(), keys_of(key), None,
                              Contexts(catalog.batch_context))
    assert all(isinstance(o, AcceptedBatch) for o in outcomes)
    assert (outcomes[0].bundle is not None) == bundle
    catalog.commit(outcomes)


@pytest.fixture
def v2_catalog(tmp_path, key):
    catalog = open_catalog(tmp_path / "catalog.db")
    catalog.add_station(Station("S2", "net"), public_bytes(key.public_key()),
                        key_id(key.public_key()))
    commit_v2(catalog, key, [record_batch(1)], bundle=False)
    commit_v2(catalog, key, [record_batch(seq, flags=(None, "NAN", None),
                                          values=(20.0 + seq, None, 0.2))
                             for seq in range(2, 6)], bundle=True)
    yield catalog
    catalog.close()


def test_a_stored_v2_batch_verifies_from_the_catalog_alone(v2_catalog):
    report = verify_catalog(v2_catalog)
    assert report.problems == [] and report.batches == 5
    record = v2_catalog.batch_record("S2", "e2", 3)
    assert record["context"] is not None and wire.is_v2_body(record["body"])
    v2_catalog.conn.execute("UPDATE observation_values SET value = 99.5 WHERE id = "
                            "(SELECT first_row FROM batches WHERE seq = 3)")
    problems = verify_catalog(v2_catalog).problems
    assert problems and all("obslink:S2/e2/3" in p["where"] for p in problems), problems


def test_the_provenance_recipe_verifies_a_v2_observation(v2_catalog, tmp_path, key):
    write_keypair(tmp_path / "collector.key", tmp_path / "collector.pub")
    v2_catalog.sign_tree_head(load_private_key(tmp_path / "collector.key"))
    (tmp_path / "station.pub").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    script = _recipe(tmp_path)
    for identifier in ("obslink:S2/e2/1/0", "obslink:S2/e2/4/2", "obslink:S2/e2/3/1"):
        bundle = export_bundle(v2_catalog, identifier)
        done = _run_recipe(script, bundle, tmp_path)
        assert done.returncode == 0 and done.stdout.strip() == f"verified: {identifier}", \
            done.stderr
        if bundle["observation"]["value"] is not None:
            bundle["observation"]["value"] += 0.001
            assert _run_recipe(script, bundle, tmp_path).returncode != 0


def test_the_collector_takes_a_v2_message_marked_live_first(key):
    pairs = compact_pairs(record_batch(1))
    for live in (True, False):
        message = MQTTMessage(topic=TOPIC.encode())
        message.payload = wire.sign_v2(pairs, [], TOPIC, key, key_id(key.public_key()),
                                       live=live)
        assert is_live(message) is live
