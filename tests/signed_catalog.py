"""Signed batches committed into a real catalog (SQLite, and PostgreSQL: the fixture runs
each test on both), without a broker: what the provenance, verification and catalog API
tests start from."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from obslink import wire
from obslink.keys import key_id, load_private_key, public_bytes, write_keypair
from obslink.readings import Reading, now_us
from obslink.server.catalog import AcceptedBatch, SignedBundle, Station, open_catalog

T0 = 1_795_000_000_000_000
MINUTE = 60_000_000
TOPIC = "obslink/v1/net/S1/data"


def readings_of(minute: int, flagged: bool) -> list[Reading]:
    t = T0 + minute * MINUTE
    return [Reading(t, "air_temperature", 20.0 + minute / 10, "degC", "T", None, 0, None, 1, 0),
            Reading(t, "relative_humidity", None if flagged else 55.5, "%", "RH",
                    "NAN" if flagged else None, 0, None, 1, 0),
            Reading(t, "air_pressure", 1013.25, "hPa", "P", None, 0, None, 1, 0)]


def batch(seq: int, flagged: bool = False) -> wire.Batch:
    return wire.Batch("S1", "e1", seq, T0 + seq * MINUTE, readings_of(seq, flagged),
                      "toa5", "1.0", {"name": "logger", "start": seq * 100,
                                      "end": seq * 100 + 99, "sha256": bytes(32)},
                      {"synced": True, "offset_ms": 1.5}, ["range"])


def signed(batch: wire.Batch, key: Ed25519PrivateKey) -> AcceptedBatch:
    body = wire.encode_batch(batch)
    return AcceptedBatch(wire.decode_batch_columns(body), TOPIC, key_id(key.public_key()),
                         key.sign(wire.signed_message(TOPIC, body)), body, now_us())


def bundled(batches: list[wire.Batch], key: Ed25519PrivateKey) -> list[AcceptedBatch]:
    bodies = [wire.encode_batch(batch) for batch in batches]
    digests = wire.bundle_digests(bodies)
    signature = key.sign(wire.signed_bundle(TOPIC, digests))
    bundle = SignedBundle(TOPIC, key_id(key.public_key()), signature, digests, now_us())
    return [AcceptedBatch(wire.decode_batch_columns(body), TOPIC, key_id(key.public_key()),
                          signature, body, now_us(), bundle) for body in bodies]


def make_signed_catalog(directory, location=None):
    """A catalog of 6 signed batches (one with source flags, three in a bundle) under a
    signed tree head, with the station's and the collector's key files, in ``directory``;
    the catalog at ``location`` (by default catalog.db in ``directory``)."""
    write_keypair(directory / "station.key", directory / "station.pub")
    write_keypair(directory / "collector.key", directory / "collector.pub")
    station = load_private_key(directory / "station.key")
    collector = load_private_key(directory / "collector.key")
    catalog = open_catalog(location or directory / "catalog.db")
    catalog.committed_by = key_id(collector.public_key())
    catalog.add_station(Station("S1", "net", "Station one"), public_bytes(station.public_key()),
                        key_id(station.public_key()))
    catalog.commit([signed(batch(1), station), signed(batch(2, flagged=True), station)])
    catalog.commit([signed(batch(3), station)])
    catalog.commit(bundled([batch(4), batch(5), batch(6)], station))
    catalog.sign_tree_head(collector)
    return catalog, collector


@pytest.fixture
def signed_catalog(tmp_path, catalog_location):
    catalog, collector = make_signed_catalog(tmp_path, catalog_location)
    yield catalog, tmp_path, collector
    catalog.close()
