"""The wire codec and signatures: exact round trips, topic binding, arbitrary input."""

from __future__ import annotations

import os

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from obslink import wire
from obslink.errors import WireError
from obslink.keys import key_id, public_bytes
from obslink.readings import Reading
from obslink.server.catalog import AcceptedBatch, Refusal
from obslink.server.verify import verify_message

KEY = Ed25519PrivateKey.generate()
KID = key_id(KEY.public_key())
FUZZ = int(os.environ.get("OBSLINK_FUZZ_EXAMPLES", 2000))

text = st.text(max_size=20)
readings = st.builds(
    Reading,
    observed_at=st.integers(-2**62, 2**62),
    element=text, value=st.one_of(st.none(), st.floats(allow_nan=False)), unit=text,
    source_field=text, source_flag=st.one_of(st.none(), text), qc=st.integers(0, 255),
    period_s=st.one_of(st.none(), st.integers(1, 2**40)), qc_ran=st.just(0),
    qc_failed=st.just(0))


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
    created_at=st.integers(-2**62, 2**62), readings=st.lists(readings, max_size=30),
    adapter=text, adapter_version=text,
    source=st.fixed_dictionaries({"name": text, "start": st.integers(0, 2**40),
                                  "sha256": st.binary(min_size=32, max_size=32)}),
    clock=st.fixed_dictionaries({"synced": st.one_of(st.none(), st.booleans())}))


@st.composite
def batches(draw):
    batch = draw(plain_batches)
    if batch.readings and draw(st.booleans()):
        batch.qc_checks, batch.readings = draw(qc_annotated(batch.readings))
    return batch


@settings(max_examples=500, deadline=None)
@given(batch=batches())
def test_batch_round_trip_is_exact(batch):
    assert wire.decode_batch(wire.encode_batch(batch)) == batch


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


def sealed(seq=1, station="S1", topic_station="S1"):
    body = wire.encode_batch(wire.Batch(station, "ep", seq, 0, [
        Reading(1, "air_temperature", 1.5, "degC", "T")]))
    topic = wire.data_topic("net", topic_station)
    return topic, wire.seal(body, topic, KEY, KID)


def test_signature_binds_the_topic():
    topic, payload = sealed()
    envelope = wire.open_envelope(payload)
    assert wire.verify(envelope, topic, KEY.public_key())
    assert not wire.verify(envelope, wire.data_topic("net", "S2"), KEY.public_key())
    assert not wire.verify(envelope, wire.data_topic("other", "S1"), KEY.public_key())


@settings(max_examples=FUZZ, deadline=None)
@given(data=st.data())
def test_mutated_messages_are_accepted_exactly_as_signed_or_refused(data):
    topic, payload = sealed(seq=data.draw(st.integers(0, 1000)))
    mutated = bytearray(payload)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(mutated) - 1))
        mutated[position] = data.draw(st.integers(0, 255))
    outcome = verify_message(topic, bytes(mutated), 0, keys_for)
    if isinstance(outcome, AcceptedBatch):
        # only possible when the signed body survived untouched
        assert outcome.body == wire.open_envelope(payload).body
    else:
        assert isinstance(outcome, Refusal) and outcome.reason and outcome.detail


@settings(max_examples=FUZZ, deadline=None)
@given(payload=st.binary(max_size=400), topic=st.text(max_size=60))
def test_arbitrary_messages_are_refused_with_a_reason(payload, topic):
    outcome = verify_message(topic, payload, 0, keys_for)
    assert isinstance(outcome, Refusal) and outcome.reason


def test_refusal_reasons():
    topic, payload = sealed()
    assert isinstance(verify_message(topic, payload, 0, keys_for), AcceptedBatch)
    assert verify_message("a/b", payload, 0, keys_for).reason == "wrong-topic"
    assert verify_message(topic, b"\x93junk", 0, keys_for).reason == "malformed"
    other_topic, other = sealed(station="S9", topic_station="S9")
    assert verify_message(other_topic, other, 0, keys_for).reason == "unknown-station"
    revoked = lambda s: {KID: (public_bytes(KEY.public_key()), "revoked")}
    assert verify_message(topic, payload, 0, revoked).reason == "revoked-key"
    # signed for its own topic by S1's key but naming S2 inside: refused, ackable
    mismatch_topic, mismatch = sealed(station="S2", topic_station="S1")
    refusal = verify_message(mismatch_topic, mismatch, 0, keys_for)
    assert refusal.reason == "wrong-topic" and refusal.verified and refusal.seq == 1


def test_ack_round_trip():
    ack = wire.Ack("ep", [1, 2, 3], [(4, "malformed: x")])
    assert wire.decode_ack(wire.encode_ack(ack)) == ack


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
