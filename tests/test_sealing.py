"""Payload encryption end to end: the broker sees only sealed bytes, the catalog the readings
as the station signed them (real Mosquitto, collector and agent processes)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from obslink import wire
from obslink.keys import load_or_create_decryption_key, public_bytes
from obslink.server.collector import DECRYPTION_KEY_FILE
from tests.conftest import NETWORK, listening, wait_until

pytestmark = pytest.mark.e2e


def seal_station_to(station, public_hex: str) -> None:
    text = station.config.read_text()
    station.config.write_text(
        text.replace("[uplink]\n", f'[uplink]\nencrypt_to = "{public_hex}"\n'))


def test_sealed_batches_cross_the_broker_unreadable_and_arrive_intact(deployment):
    station = deployment.add_station("SEAL-1", kind_index=0)
    deployment.start_collector()  # creates its X25519 key beside the catalog
    key = load_or_create_decryption_key(
        deployment.catalog_path.with_name(DECRYPTION_KEY_FILE))
    seal_station_to(station, public_bytes(key.public_key()).hex())

    # protocol v1 and, from the first ack on, v2 (docs/protocol.md)
    with listening(deployment.broker.port, f"obslink/+/{NETWORK}/{station.id}/data") as spied:
        deployment.start_agent(station)
        for _ in range(3):
            station.logger.write_next()
        wait_until(lambda: deployment.catalog.count("observations") == 21, message="3 records")
        wait_until(lambda: station.unacked_batches() == 0, message="the agent to take its acks")
        for count in (28, 35):  # one record a batch: v2 now
            station.logger.write_next()
            wait_until(lambda: deployment.catalog.count("observations") == count,
                       message=f"{count} readings")
    assert {topic for (topic,) in deployment.catalog.query(
        "SELECT DISTINCT substr(topic, 1, 10) FROM batches")} == {"obslink/v1", "obslink/v2"}
    seen = [message.payload for message in spied]
    assert seen and all(wire.is_sealed(payload) for payload in seen)
    assert not any(station.id.encode() in payload or b"air_temperature" in payload
                   for payload in seen)
    # the catalog keeps what the station signed, not the sealed bytes
    signatures = deployment.catalog.query("SELECT signature FROM batches")
    assert signatures and all(len(row[0]) == 64 for row in signatures)
    assert deployment.catalog.count("refusals") == 0


def test_a_message_sealed_to_another_key_is_refused(deployment):
    station = deployment.add_station("SEAL-2", kind_index=0)
    deployment.start_collector()
    stranger = public_bytes(
        X25519PrivateKey.generate().public_key()).hex()
    seal_station_to(station, stranger)
    deployment.start_agent(station)
    station.logger.write_next()
    wait_until(lambda: deployment.catalog.count("refusals") >= 1, message="a refusal")
    reasons = {row[0] for row in deployment.catalog.query("SELECT reason FROM refusals")}
    assert reasons == {"decryption-failed"}
    assert deployment.catalog.count("observations") == 0
