"""A verified batch the catalog cannot store: refused alone, never blocking its group.

Before, such a batch failed its group's commit at every redelivery, and every other
station's batch that shared the group failed with it. Real collector, broker and catalog.
"""

from __future__ import annotations

import contextlib
import sqlite3

import pytest

from obslink import wire
from obslink.keys import key_id, load_private_key
from obslink.readings import Reading, now_us
from obslink.server.catalog.sqlite_schema import MAX_CATALOG_CHECKS
from obslink.server.centre_qc import centre_qc_runner
from tests.conftest import NETWORK, wait_until
from tests.test_end_to_end import Publisher, signed_batch


def batch_with_qc_checks(station_id: str, key_path, names: list[str]) -> tuple[str, bytes]:
    key = load_private_key(key_path)
    reading = Reading(now_us(), "air_temperature", 21.5, "degC", "AirTC", None, 0, None, 1, 0)
    body = wire.encode_batch(wire.Batch(station_id, "e1", 1, now_us(), [reading], "toa5", "1",
                                        qc_checks=names))
    topic = wire.data_topic(NETWORK, station_id)
    return topic, wire.sign(body, topic, key, key_id(key.public_key()))


def test_a_batch_the_catalog_cannot_store_is_refused_and_its_group_stored(deployment):
    poisoned = deployment.add_station("UNSTORABLE-1")
    healthy = deployment.add_station("UNSTORABLE-2")
    # The catalog is one QC check name short of full: the centre's checks are in it,
    # a sender's new check name cannot get a bit.
    names = centre_qc_runner().names
    fillers = [f"filler-{n}" for n in range(MAX_CATALOG_CHECKS - len(names))]
    with contextlib.closing(sqlite3.connect(deployment.catalog_path)) as conn, conn:
        conn.executemany("INSERT INTO qc_checks (bit, name) VALUES (?, ?)",
                         enumerate(names + fillers))
    deployment.start_collector()
    publisher = Publisher(deployment.broker, wire.ack_topic(NETWORK, "+"))
    try:
        # published back to back: usually one group, which then cannot commit as a whole
        publisher.publish(*batch_with_qc_checks(poisoned.id, poisoned.private_key,
                                                ["novel-check"]))
        publisher.publish(*signed_batch(healthy.id, healthy.private_key, seq=1))
        publisher.publish(*signed_batch(healthy.id, healthy.private_key, seq=2))
        wait_until(lambda: deployment.catalog.count("observations") == 2,
                   message="the healthy station's batches")
        wait_until(lambda: any(ack.refused for ack in publisher.acks),
                   message="the refusal's ack")
    finally:
        publisher.close()
    assert deployment.catalog.query("SELECT station, reason, seq FROM refusals") == \
        [("UNSTORABLE-1", "unstorable", 1)]
    detail = deployment.catalog.query("SELECT detail FROM refusals")[0][0]
    assert "novel-check" in detail and "QC check names" in detail
    refused = [ack.refused for ack in publisher.acks if ack.refused]
    assert len(refused) == 1 and refused[0][0][0] == 1 and "unstorable" in refused[0][0][1]
    assert sorted(seq for ack in publisher.acks for seq in ack.committed) == [1, 2]
    assert deployment.catalog.query("SELECT DISTINCT station FROM observations") == \
        [("UNSTORABLE-2",)]


def test_only_the_databases_state_counts_as_a_failure_worth_a_redelivery(tmp_path):
    from obslink.errors import StorageError
    from obslink.server.catalog import open_catalog

    catalog = open_catalog(tmp_path / "catalog.db")  # the backend owns the classification
    is_transient = catalog.is_transient

    for error in (sqlite3.OperationalError("database or disk is full"),
                  sqlite3.DatabaseError("database disk image is malformed"), OSError(28, "")):
        assert is_transient(error), error
    for error in (sqlite3.IntegrityError("UNIQUE"), OverflowError("int too large"),
                  StorageError("62 QC check names"), ValueError("x")):
        assert not is_transient(error), error
    catalog.close()


def test_on_postgresql_only_the_databases_state_is_worth_a_redelivery(postgres):
    import psycopg

    from obslink.server.catalog import open_catalog

    catalog = open_catalog(postgres.url)
    try:
        with pytest.raises(psycopg.Error) as duplicate:  # a real one, from the server
            catalog.conn.execute("INSERT INTO catalog_settings (key, value) VALUES "
                                 "('centre_id', 'x')")
        assert not catalog.is_transient(duplicate.value)
        for error in (psycopg.OperationalError("connection lost"), psycopg.errors.DiskFull(),
                      psycopg.errors.SerializationFailure(), psycopg.errors.AdminShutdown(),
                      OSError(28, "")):
            assert catalog.is_transient(error), error
        for error in (psycopg.errors.NumericValueOutOfRange(), OverflowError("int too large"),
                      ValueError("x")):
            assert not catalog.is_transient(error), error
    finally:
        catalog.close()


def test_a_nul_in_a_reading_is_stored_on_sqlite_and_refused_alone_on_postgresql(
        deployment_on_each_backend):
    """PostgreSQL's text cannot hold NUL (docs/scaling.md): there the batch is refused as
    unstorable, with the reason, and the rest of its group is stored; SQLite stores it."""
    deployment = deployment_on_each_backend
    odd = deployment.add_station("NUL-1")
    healthy = deployment.add_station("NUL-2")
    deployment.start_collector()
    key = load_private_key(odd.private_key)
    reading = Reading(now_us(), "air_temperature", 21.5, "degC", "AirTC", "bad\x00flag", 0,
                      None, 1, 0)
    topic = wire.data_topic(NETWORK, odd.id)
    body = wire.encode_batch(wire.Batch(odd.id, "e1", 1, now_us(), [reading], "toa5", "1"))
    publisher = Publisher(deployment.broker, wire.ack_topic(NETWORK, "+"))
    try:
        publisher.publish(topic, wire.sign(body, topic, key, key_id(key.public_key())))
        publisher.publish(*signed_batch(healthy.id, healthy.private_key, seq=1))
        on_postgresql = isinstance(deployment.catalog_path, str)
        wait_until(lambda: deployment.catalog.count("observations") == (1 if on_postgresql
                                                                         else 2),
                   message="the stored readings")
        if on_postgresql:
            wait_until(lambda: any(ack.refused for ack in publisher.acks),
                       message="the refusal's ack")
    finally:
        publisher.close()
    refusals = deployment.catalog.query("SELECT station, reason, detail FROM refusals")
    if on_postgresql:
        assert [(station, reason) for station, reason, _ in refusals] == \
            [("NUL-1", "unstorable")]
        assert "0x00" in refusals[0][2]  # PostgreSQL: invalid byte sequence … 0x00
    else:
        assert refusals == []
