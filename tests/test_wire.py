"""The wire codec and signatures: exact round trips, topic binding, arbitrary input."""

from __future__ import annotations

import functools
import hashlib
import math
import multiprocessing
import os
import tempfile
from pathlib import Path

import msgpack
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import example, given, settings
from hypothesis import strategies as st

from obslink import wire
from obslink.errors import WireError
from obslink.keys import key_id, load_or_create_decryption_key, public_bytes
from obslink.readings import MAX_TIME_US, MIN_TIME_US, Reading
from obslink.server.catalog import AcceptedBatch, Catalog, Refusal, Station, open_catalog
from obslink.server.centre_qc import CentreQC, centre_qc_runner
from obslink.server.verify import verify_message
from obslink.wire import batch as wire_batch

KEY = Ed25519PrivateKey.generate()
KID = key_id(KEY.public_key())
FUZZ = int(os.environ.get("OBSLINK_FUZZ_EXAMPLES", 2000))

text = st.text(max_size=20)
readings = st.builds(
    Reading,
    observed_at=st.integers(MIN_TIME_US, MAX_TIME_US),
    element=text, value=st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
    unit=text,
    source_field=text, source_flag=st.one_of(st.none(), text), qc=st.integers(0, 255),
    period_s=st.one_of(st.none(), st.integers(1, 2**40)), qc_ran=st.just(0),
    qc_failed=st.just(0), source_unit=st.one_of(st.none(), text))


@st.composite
def qc_annotated(draw, readings):
    """Readings with masks over a list of QC check names, as an agent running QC sends."""
    names = draw(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=32,
                          unique=True))
    masks = st.integers(0, 2 ** len(names) - 1)
    out = []
    for reading in readings:
        ran = draw(masks)
        out.append(reading._replace(qc_ran=ran, qc_failed=ran & draw(masks)))
    return names, out


plain_batches = st.builds(
    wire.Batch, station=st.from_regex(wire.STATION_ID_RE, fullmatch=True),
    epoch=st.text(min_size=1, max_size=64), seq=st.integers(0, 2**63 - 1),
    created_at=st.integers(MIN_TIME_US, MAX_TIME_US), readings=st.lists(readings, max_size=30),
    adapter=text, adapter_version=text,
    source=st.fixed_dictionaries({"name": text, "start": st.integers(0, 2**40),
                                  "sha256": st.binary(min_size=32, max_size=32)}),
    clock=st.fixed_dictionaries({"synced": st.one_of(st.none(), st.booleans())}))


@st.composite
def batches(draw):
    batch = draw(plain_batches)
    batch.floor = draw(st.one_of(st.none(), st.integers(0, batch.seq)))
    if batch.readings and draw(st.booleans()):
        batch.qc_checks, batch.readings = draw(qc_annotated(batch.readings))
    return batch


@settings(max_examples=500, deadline=None)
@given(batch=batches())
def test_batch_round_trip_is_exact(batch):
    assert wire.decode_batch(wire.encode_batch(batch)) == batch


def test_a_floor_above_the_batchs_own_sequence_number_is_malformed():
    body = wire.encode_batch(wire.Batch("S1", "ep", 4, 0, [], floor=4))
    assert wire.decode_batch(body).floor == 4
    for floor in (5, -1, "3", 2.0):
        data = msgpack.unpackb(body)
        data["floor"] = floor
        with pytest.raises(WireError, match="floor"):
            wire.decode_batch(msgpack.packb(data))


def test_times_a_catalog_cannot_show_as_utc_text_are_malformed():
    """Such a batch would fail every commit of the group it arrives in."""
    reading = Reading(MAX_TIME_US, "air_temperature", 1.0, "degC", "T")
    assert wire.decode_batch(wire.encode_batch(wire.Batch("S1", "ep", 1, MIN_TIME_US,
                                                          [reading]))).readings == [reading]
    for created_at, observed_at in ((0, MAX_TIME_US + 1), (0, MIN_TIME_US - 1),
                                    (MAX_TIME_US + 1, 0), (-2**62, 0)):
        body = wire.encode_batch(wire.Batch("S1", "ep", 1, created_at, [
            reading._replace(observed_at=observed_at)]))
        with pytest.raises(WireError, match="malformed"):
            wire.decode_batch(body)


def test_qc_masks_that_do_not_fit_the_check_names_are_malformed():
    import msgpack

    reading = Reading(0, "air_temperature", 1.0, "degC", "T", None, 0)
    good = wire.encode_batch(wire.Batch("S1", "ep", 1, 0, [reading._replace(qc_ran=1)],
                                        qc_checks=["range"]))
    for key, value in (("qcr", [2]), ("qcf", [1, 0]), ("qcc", ["range", "range"]),
                       ("qcf", [1]), ("qcc", [])):
        body = msgpack.unpackb(good)
        body[key] = value
        if key == "qcf" and value == [1]:
            body["qcr"] = [0]  # flagged by a check that did not run
        try:
            wire.decode_batch(msgpack.packb(body))
        except WireError as exc:
            assert "malformed" in str(exc)
        else:
            raise AssertionError(f"{key}={value} accepted")


msgpack_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1),
                            st.integers(-2, 300), st.sampled_from([2**63 - 1, 2**63, 2**64 - 1]),
                            st.floats(), st.floats(-1, 300),
                            st.text(max_size=8), st.binary(max_size=8))
msgpack_values = st.one_of(msgpack_scalars, st.recursive(
    msgpack_scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=8))
VALID = msgpack.unpackb(wire.encode_batch(wire.Batch("S1", "ep", 3, 0, [
    Reading(60_000_000, "air_temperature", 1.5, "degC", "T", "A", 0, 60, 1, 0),
    Reading(60_000_000, "wind_speed", None, "m/s", "WS", None, 1, None, 3, 2)],
    qc_checks=["range", "step"], floor=2)))


@settings(max_examples=FUZZ, deadline=None)
@given(key=st.sampled_from(sorted(VALID)), value=msgpack_values, nested=st.booleans(),
       pick=st.integers(0, 15))
def test_a_batch_with_one_field_replaced_decodes_well_typed_or_raises_wire_error(
        key, value, nested, pick):
    """Structure-aware fuzzing of the collector's decoder (it checks whole columns at once
    and remembers field tables): whatever one field holds, the result is well typed or
    the error is a WireError."""
    data = msgpack.unpackb(wire.encode_batch(wire.decode_batch(msgpack.packb(VALID))))
    container = data[key]
    if nested and isinstance(container, list) and container:
        container[pick % len(container)] = value  # one element of a column or table
    elif nested and isinstance(container, dict) and container:
        container[sorted(container)[pick % len(container)]] = value  # e.g. source start
    else:
        data[key] = value
    try:
        batch = wire.decode_batch_columns(msgpack.packb(data))
    except WireError:
        return
    count = len(batch.times)
    assert len(batch.field_index) == len(batch.values) == len(batch.qc) == count
    assert all(type(t) is int for t in batch.times)
    assert all(type(i) is int and 0 <= i < len(batch.fields) for i in batch.field_index)
    assert all(v is None or type(v) is float for v in batch.values)
    assert all(type(q) is int and 0 <= q <= 255 for q in batch.qc)
    for element, unit, source_field, period, source_unit in batch.fields:
        assert type(element) is type(unit) is type(source_field) is str
        assert period is None or (type(period) is int and period > 0)
        assert source_unit is None or type(source_unit) is str
    assert all(type(r) is int and r & f == f for r, f in zip(batch.qc_ran, batch.qc_failed))
    assert batch.readings() == wire.decode_batch(msgpack.packb(data)).readings
    if batch.station == "S1":
        # what decodes, the catalog stores: a batch it could not would fail its whole
        # group's commit at every redelivery
        fuzz_catalog().commit([AcceptedBatch(batch, "obslink/v1/net/S1/data", KID, b"s" * 64,
                                             msgpack.packb(data), 0)],
                                            CentreQC(centre_qc_runner()))


# the usual batch: every value there, no source flags (the collector's shorter path)
USUAL = msgpack.unpackb(wire.encode_batch(wire.Batch("S1", "ep", 3, 0, [
    Reading(60_000_000, "air_temperature", 1.5, "degC", "T", None, 0, 60, 1, 0),
    Reading(60_000_000, "wind_speed", 2.0, "m/s", "WS", None, 1, None, 3, 2)],
    qc_checks=["range", "step"], floor=2)))


@settings(max_examples=FUZZ, deadline=None)
@given(key=st.sampled_from(sorted(USUAL)), value=msgpack_values, nested=st.booleans(),
       pick=st.integers(0, 15))
@example(key="val", value=math.nan, nested=True, pick=1)
@example(key="val", value=-math.inf, nested=True, pick=0)
@example(key="val", value=3, nested=True, pick=0)
@example(key="t", value=True, nested=True, pick=0)
@example(key="t", value=MAX_TIME_US + 1, nested=True, pick=1)
@example(key="f", value=2, nested=True, pick=0)
@example(key="qc", value=256, nested=True, pick=0)
@example(key="qcr", value=4, nested=True, pick=0)
@example(key="qcf", value=2, nested=True, pick=0)
@example(key="floor", value=4, nested=False, pick=0)
@example(key="flags", value=[[0, "NAN"]], nested=False, pick=0)
def test_the_decoders_usual_case_path_agrees_with_the_thorough_one(key, value, nested, pick):
    """The collector decodes the usual batch on a shorter path; whatever it accepts, the
    thorough path (which names the failing field) accepts with the same result."""
    wire.decode_batch_columns(msgpack.packb(USUAL))  # its station and tables are known
    data = msgpack.unpackb(msgpack.packb(USUAL))
    container = data[key]
    if nested and isinstance(container, list) and container:
        container[pick % len(container)] = value
    elif nested and isinstance(container, dict) and container:
        container[sorted(container)[pick % len(container)]] = value
    else:
        data[key] = value
    usual = wire_batch._usual_batch(data)
    if usual is not None:
        assert usual == wire_batch._checked_batch(data)  # raises WireError if it should not decode


def test_the_usual_case_path_takes_the_usual_batch():
    """Otherwise the test above would compare nothing."""
    wire.decode_batch_columns(msgpack.packb(USUAL))
    assert wire_batch._usual_batch(USUAL) is not None
    assert wire_batch._usual_batch(USUAL) == wire_batch._checked_batch(USUAL)


@functools.cache
def fuzz_catalog() -> Catalog:
    catalog = open_catalog(Path(tempfile.mkdtemp(prefix="obslink-fuzz-")) / "catalog.db")
    catalog.add_station(Station("S1", "net"), None, None)
    return catalog


@settings(max_examples=FUZZ, deadline=None)
@given(payload=st.binary(max_size=600))
def test_arbitrary_bytes_only_ever_raise_wire_error(payload):
    for decode in (wire.decode_batch, wire.open_envelope, wire.decode_ack):
        try:
            decode(payload)
        except WireError:
            pass


def keys_for(station):
    return {KID: (public_bytes(KEY.public_key()), "active")} if station == "S1" else {}


def signed(seq=1, station="S1", topic_station="S1"):
    body = wire.encode_batch(wire.Batch(station, "ep", seq, 0, [
        Reading(1, "air_temperature", 1.5, "degC", "T")]))
    topic = wire.data_topic("net", topic_station)
    return topic, wire.sign(body, topic, KEY, KID)


def test_signature_binds_the_topic():
    topic, payload = signed()
    envelope = wire.open_envelope(payload)
    assert wire.verify(envelope, topic, KEY.public_key())
    assert not wire.verify(envelope, wire.data_topic("net", "S2"), KEY.public_key())
    assert not wire.verify(envelope, wire.data_topic("other", "S1"), KEY.public_key())


@settings(max_examples=FUZZ, deadline=None)
@given(data=st.data())
def test_mutated_messages_are_accepted_exactly_as_signed_or_refused(data):
    topic, payload = signed(seq=data.draw(st.integers(0, 1000)))
    mutated = bytearray(payload)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(mutated) - 1))
        mutated[position] = data.draw(st.integers(0, 255))
    [outcome] = verify_message(topic, bytes(mutated), 0, keys_for)
    if isinstance(outcome, AcceptedBatch):
        # only possible when the signed body survived untouched
        assert outcome.body == wire.open_envelope(payload).body
    else:
        assert isinstance(outcome, Refusal) and outcome.reason and outcome.detail


@settings(max_examples=FUZZ, deadline=None)
@given(payload=st.binary(max_size=400), topic=st.text(max_size=60))
def test_arbitrary_messages_are_refused_with_a_reason(payload, topic):
    [outcome] = verify_message(topic, payload, 0, keys_for)
    assert isinstance(outcome, Refusal) and outcome.reason


def only(outcomes):
    [outcome] = outcomes
    return outcome


def test_refusal_reasons():
    topic, payload = signed()
    assert isinstance(only(verify_message(topic, payload, 0, keys_for)), AcceptedBatch)
    assert only(verify_message("a/b", payload, 0, keys_for)).reason == "wrong-topic"
    assert only(verify_message(topic, b"\x93junk", 0, keys_for)).reason == "malformed"
    huge = b"\x00" * (wire.MAX_ENVELOPE_BYTES + 1)
    assert only(verify_message(topic, huge, 0, keys_for)).reason == "oversized"
    other_topic, other = signed(station="S9", topic_station="S9")
    assert only(verify_message(other_topic, other, 0, keys_for)).reason == "unknown-station"
    revoked = lambda s: {KID: (public_bytes(KEY.public_key()), "revoked")}
    assert only(verify_message(topic, payload, 0, revoked)).reason == "revoked-key"
    # signed for its own topic by S1's key but naming S2 inside: refused, ackable
    mismatch_topic, mismatch = signed(station="S2", topic_station="S1")
    refusal = only(verify_message(mismatch_topic, mismatch, 0, keys_for))
    assert refusal.reason == "wrong-topic" and refusal.verified and refusal.seq == 1


def body(seq, station="S1"):
    return wire.encode_batch(wire.Batch(station, "ep", seq, 0, [
        Reading(seq, "air_temperature", 1.5, "degC", "T")]))


def test_a_bundle_is_one_signature_over_its_bodies_and_keeps_each_batch():
    topic = wire.data_topic("net", "S1")
    bodies = [body(seq) for seq in (3, 4, 5)]
    payload = wire.sign_bundle(bodies, topic, KEY, KID)
    outcomes = verify_message(topic, payload, 7, keys_for)
    assert [o.batch.seq for o in outcomes] == [3, 4, 5]
    assert [o.body for o in outcomes] == bodies
    bundle = outcomes[0].bundle
    assert all(o.bundle is bundle for o in outcomes) and bundle.received_at == 7
    # provenance of one batch needs its body, the digest list and the signature only
    assert hashlib.sha256(bodies[1]).digest() in [bundle.digests[i:i + 32]
                                                  for i in range(0, len(bundle.digests), 32)]
    KEY.public_key().verify(bundle.signature, wire.signed_bundle(topic, bundle.digests))
    # bound to the topic, and not interchangeable with a single batch's signature
    other = wire.data_topic("net", "S2")
    assert not wire.verify(wire.open_envelope(payload), other, KEY.public_key())
    single = wire.open_envelope(wire.sign(bodies[0], topic, KEY, KID))
    forged = msgpack.packb({"v": 1, "kid": KID, "bodies": [bodies[0]],
                            "sig": single.signature}, use_bin_type=True)
    assert only(verify_message(topic, forged, 0, keys_for)).reason == "bad-signature"


def test_a_bundle_refuses_its_bad_batches_and_takes_the_others():
    topic = wire.data_topic("net", "S1")
    payload = wire.sign_bundle([body(1), b"\x93junk", body(2, station="S2"), body(3)],
                               topic, KEY, KID)
    outcomes = verify_message(topic, payload, 0, keys_for)
    assert [type(o).__name__ for o in outcomes] == ["AcceptedBatch", "Refusal", "Refusal",
                                                    "AcceptedBatch"]
    assert outcomes[1].reason == "malformed" and outcomes[2].reason == "wrong-topic"
    assert outcomes[2].verified and outcomes[2].seq == 2
    too_many = wire.sign_bundle([body(1)] * (wire.MAX_BUNDLE_BATCHES + 1), topic, KEY, KID)
    assert only(verify_message(topic, too_many, 0, keys_for)).reason == "malformed"
    gap_topic = wire.gap_topic("net", "S1")
    bundled_gap = wire.sign_bundle([body(1)], gap_topic, KEY, KID)
    assert only(verify_message(gap_topic, bundled_gap, 0, keys_for)).reason == "malformed"


@settings(max_examples=FUZZ // 4, deadline=None)
@given(data=st.data())
def test_mutated_bundles_are_accepted_exactly_as_signed_or_refused(data):
    topic = wire.data_topic("net", "S1")
    bodies = [body(seq) for seq in range(data.draw(st.integers(1, 4)))]
    payload = bytearray(wire.sign_bundle(bodies, topic, KEY, KID))
    for _ in range(data.draw(st.integers(1, 4))):
        payload[data.draw(st.integers(0, len(payload) - 1))] = data.draw(st.integers(0, 255))
    for outcome in verify_message(topic, bytes(payload), 0, keys_for):
        if isinstance(outcome, AcceptedBatch):
            assert outcome.body in bodies
        else:
            assert isinstance(outcome, Refusal) and outcome.reason and outcome.detail


def test_ack_round_trip():
    ack = wire.Ack("ep", [1, 2, 3], [(4, "malformed: x")])
    assert wire.decode_ack(wire.encode_ack(ack)) == ack
    announcing = wire.Ack("ep", [1], gaps=[2], now=5, bundles=64)
    assert wire.decode_ack(wire.encode_ack(announcing)) == announcing


def test_station_ids_and_topics():
    assert wire.check_station_id("0-20000-0-54511")
    for bad in ("", "a/b", "+", "#", "$SYS", "x" * 65, "a b"):
        try:
            wire.check_station_id(bad)
        except WireError as exc:
            assert "station id" in str(exc)
        else:
            raise AssertionError(bad)
    assert wire.parse_data_topic("obslink/v1/net/0-20000-0-54511/data") == (
        "net", "0-20000-0-54511")


COLLECTOR_X25519 = X25519PrivateKey.generate()


def test_a_sealed_message_opens_only_with_the_collectors_key_on_its_topic():
    topic, payload = signed()
    box = wire.seal(payload, topic, COLLECTOR_X25519.public_key())
    assert wire.is_sealed(box) and not wire.is_sealed(payload)
    # plaintext markers long enough that random ciphertext cannot contain them by chance
    # (a 2-byte station id appears in ~300 random bytes about once in 200 runs)
    assert b"air_temperature" not in box
    assert wire.open_envelope(payload).signature not in box
    assert wire.unseal(box, topic, COLLECTOR_X25519) == payload
    [accepted] = verify_message(topic, box, 0, keys_for, COLLECTOR_X25519)
    assert isinstance(accepted, AcceptedBatch)
    assert accepted.signature == wire.open_envelope(payload).signature  # signed as produced
    for key, where in ((X25519PrivateKey.generate(), topic), (None, topic),
                       (COLLECTOR_X25519, wire.data_topic("net", "S2"))):
        refusal = only(verify_message(where, box, 0, keys_for, key))
        assert refusal.reason in ("decryption-failed",) and refusal.detail


def test_sealed_messages_and_envelopes_are_told_apart_by_their_markers_not_their_size():
    """A sealed message says so with its "sealed" key and an envelope its version with "v":
    an envelope that gained a fifth key (a later optional field) is still an envelope, a
    sealed message that gained a sixth still opens, and the sealed form v1 agents send
    today is accepted as it is."""
    topic, payload = signed()
    envelope = msgpack.unpackb(payload)
    wider = msgpack.packb({**envelope, "extra": 1}, use_bin_type=True)
    assert len(envelope) + 1 == 5 and not wire.is_sealed(wider)
    [accepted] = verify_message(topic, wider, 0, keys_for, COLLECTOR_X25519)
    assert isinstance(accepted, AcceptedBatch) and accepted.signature == envelope["sig"]

    box = wire.seal(payload, topic, COLLECTOR_X25519.public_key())
    assert sorted(msgpack.unpackb(box)) == ["ct", "epk", "nonce", "sealed", "v"]  # as in v1
    for message in (box, msgpack.packb({**msgpack.unpackb(box), "extra": 1},
                                       use_bin_type=True)):
        [accepted] = verify_message(topic, message, 0, keys_for, COLLECTOR_X25519)
        assert isinstance(accepted, AcceptedBatch)

    later = msgpack.packb({**envelope, "v": 2}, use_bin_type=True)
    refusal = only(verify_message(topic, later, 0, keys_for, COLLECTOR_X25519))
    assert refusal.reason == "malformed" and "version 2" in refusal.detail
    with pytest.raises(WireError, match="sealed message holds another sealed"):
        wire.open_envelope(wire.seal(box, topic, COLLECTOR_X25519.public_key()))


def test_each_message_kind_carries_its_own_version():
    kinds = {wire.BATCH_VERSION: wire.encode_batch(wire.Batch("S1", "ep", 1, 0, [])),
             wire.ACK_VERSION: wire.encode_ack(wire.Ack("ep")),
             wire.GAP_VERSION: wire.encode_gap(wire.GapReport(
                 "S1", "ep", 1, 1, 2, 2, 10, None, None, "size-cap", 0)),
             wire.KEY_ANNOUNCEMENT_VERSION: wire.encode_key_rotation(wire.KeyRotation(
                 "S1", "ep", KID, public_bytes(KEY.public_key()), 0))}
    for version, body in kinds.items():
        assert msgpack.unpackb(body)["v"] == version
    assert msgpack.unpackb(signed()[1])["v"] == wire.ENVELOPE_VERSION
    assert wire.TOPIC_ROOT == f"obslink/v{wire.TOPIC_VERSION}"


def _decryption_key_of(path: str, start) -> bytes:
    start.wait()
    return public_bytes(load_or_create_decryption_key(Path(path)).public_key())


def test_collector_workers_starting_together_share_one_decryption_key(tmp_path):
    """Workers of one catalog start at once: one creates the key, the others load that
    one, and none finds the file missing, half-written or taken."""
    path = tmp_path / "collector-x25519.key"
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        start = manager.Barrier(6)
        with context.Pool(6) as pool:
            publics = pool.starmap(_decryption_key_of, [(str(path), start)] * 6)
    assert len(set(publics)) == 1
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no partial file left
    assert path.stat().st_mode & 0o077 == 0


@settings(max_examples=FUZZ // 4, deadline=None)
@given(data=st.data())
def test_mutated_sealed_messages_are_accepted_exactly_as_signed_or_refused(data):
    topic, payload = signed(seq=data.draw(st.integers(0, 1000)))
    box = bytearray(wire.seal(payload, topic, COLLECTOR_X25519.public_key()))
    for _ in range(data.draw(st.integers(1, 4))):
        box[data.draw(st.integers(0, len(box) - 1))] = data.draw(st.integers(0, 255))
    for outcome in verify_message(topic, bytes(box), 0, keys_for, COLLECTOR_X25519):
        if isinstance(outcome, AcceptedBatch):
            assert outcome.body == wire.open_envelope(payload).body
        else:
            assert isinstance(outcome, Refusal) and outcome.reason and outcome.detail
