"""Operators revoke station keys and see every refusal: real collector, agent and broker."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time

import pytest

from obslink import wire
from obslink.keys import key_id, load_private_key
from obslink.readings import now_us
from tests.conftest import NETWORK, listening, wait_until
from tests.test_end_to_end import Publisher, signed_batch

pytestmark = pytest.mark.e2e


def obslink(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "obslink", *args], capture_output=True,
                          text=True, check=check)


def test_a_revoked_key_is_refused_from_the_next_batch_and_the_refusal_is_listed(deployment):
    station = deployment.add_station("KEYS-1", kind_index=0)
    station.config.write_text(station.config.read_text().replace("ack_timeout = 10",
                                                                 "ack_timeout = 1"))
    db = str(deployment.catalog_path)
    kid = key_id(load_private_key(station.private_key).public_key())
    deployment.start_collector()
    deployment.start_agent(station)
    station.logger.write_next()
    wait_until(lambda: deployment.catalog.count("observations") == 7, message="a record")

    keys = json.loads(obslink("collector", "keys", "list", "--db", db, "--json").stdout)
    assert [(k["station"], k["key_id"], k["status"]) for k in keys] == \
        [("KEYS-1", kid, "active")]
    revoked = obslink("collector", "keys", "revoke", kid, "--db", db)
    assert f"key {kid} of station KEYS-1 revoked" in revoked.stdout

    for _ in range(3):  # written after the revocation: refused, never stored
        station.logger.write_next()
        time.sleep(0.2)
    report = wait_until(lambda: (r := json.loads(obslink(
        "collector", "refusals", "--db", db, "--json").stdout))["counts"] and r,
        message="the refusal")
    assert set(report["counts"]) == {"revoked-key"}
    newest = report["recent"][0]
    assert newest["station"] == "KEYS-1" and newest["key_id"] == kid
    assert len(newest["payload_sha256"]) == 64 and "revoked" in newest["detail"]
    time.sleep(1.0)
    assert deployment.catalog.count("observations") == 7
    assert deployment.catalog.query(
        "SELECT count(*) FROM batches b JOIN station_keys k ON k.key_id = b.key_id "
        "WHERE b.committed_at > k.revoked_at")[0][0] == 0

    listed = obslink("collector", "keys", "list", "--db", db).stdout
    assert "revoked" in listed and kid in listed
    text = obslink("collector", "refusals", "--db", db, "--station", "KEYS-1").stdout
    assert "revoked-key" in text and "the key was revoked" in text

    # The refusals were acknowledged: the agent parks those batches, says why, and does
    # not send them again (each was refused once).
    status = wait_until(lambda: (s := json.loads(obslink(
        "agent", "status", str(station.config), "--json").stdout))["refused_batches"] == 3
        and s, message="three parked batches")
    assert all(item["reason"].startswith("revoked-key: key") for item in status["refused"])
    assert status["unacked_batches"] == 0 and status["backlog_eta_s"] == 0
    text = obslink("agent", "status", str(station.config)).stdout
    assert "the collector refuses this station's key (revoked-key)" in text
    assert "obslink agent enrol" in text
    time.sleep(2.5)  # past two ack timeouts of 1 s: anything sent again would be here
    assert deployment.catalog.count("refusals") == 3


def test_key_and_refusal_commands_explain_mistakes(deployment):
    db = str(deployment.catalog_path)
    unknown = obslink("collector", "keys", "revoke", "0123456789abcdef", "--db", db,
                      check=False)
    assert unknown.returncode != 0 and "keys list" in unknown.stderr
    missing = obslink("collector", "refusals", "--db", str(deployment.base / "nope.db"),
                      check=False)
    assert missing.returncode != 0 and "no catalog there" in missing.stderr
    assert "no refusals" in obslink("collector", "refusals", "--db", db).stdout
    bad_since = obslink("collector", "refusals", "--db", db, "--since", "yesterday",
                        check=False)
    assert bad_since.returncode != 0 and "--since" in bad_since.stderr


def test_a_rotated_key_takes_over_and_the_old_one_retires_after_the_grace(deployment):
    station = deployment.add_station("KEYS-2", kind_index=0)
    db = str(deployment.catalog_path)
    old_kid = key_id(load_private_key(station.private_key).public_key())
    deployment.start_collector(options=("--key-grace", "10s"))
    deployment.start_agent(station)
    station.logger.write_next()
    wait_until(lambda: deployment.catalog.count("observations") == 7, message="a record")

    rotated = obslink("agent", "rotate-key", str(station.config))
    grace_ends = time.monotonic() + 10
    new_kid = key_id(load_private_key(station.private_key).public_key())
    assert new_kid != old_kid and f"now signs with key {new_kid}" in rotated.stdout
    old_file = station.private_key.with_name(station.private_key.name + ".old")
    assert key_id(load_private_key(old_file).public_key()) == old_kid
    statuses = {k["key_id"]: k["status"] for k in json.loads(obslink(
        "collector", "keys", "list", "--db", db, "--json").stdout)}
    assert statuses == {old_kid: "retiring", new_kid: "active"}

    station.logger.write_next()  # the running agent signs with the new key
    wait_until(lambda: deployment.catalog.count("observations") == 14, message="2 records")
    assert deployment.catalog.query(
        "SELECT key_id FROM batches ORDER BY id DESC LIMIT 1") == [(new_kid,)]

    publisher = Publisher(deployment.broker)
    try:  # within the grace period the old key still counts (batches it signed in flight)
        publisher.publish(*signed_batch(station.id, old_file, seq=1, epoch="old-e"))
        wait_until(lambda: deployment.catalog.count("observations") == 15,
                   message="an old-key batch within the grace period")
        time.sleep(max(0.0, grace_ends - time.monotonic()) + 0.5)
        publisher.publish(*signed_batch(station.id, old_file, seq=2, epoch="old-e"))
        wait_until(lambda: deployment.catalog.count("refusals") == 1, message="a refusal")
    finally:
        publisher.close()
    assert deployment.catalog.query("SELECT reason FROM refusals") == [("revoked-key",)]
    assert deployment.catalog.count("observations") == 15
    statuses = {k["key_id"]: k["status"] for k in json.loads(obslink(
        "collector", "keys", "list", "--db", db, "--json").stdout)}
    assert statuses == {old_kid: "retired", new_kid: "active"}


def test_rotation_without_a_collector_keeps_the_current_key(deployment):
    station = deployment.add_station("KEYS-3", kind_index=0)
    agent = deployment.start_agent(station)  # creates the outbox; no collector answers
    wait_until(lambda: (station.directory / "outbox.db").exists(), message="the outbox")
    agent.stop()
    before = station.private_key.read_bytes()
    failed = subprocess.run([sys.executable, "-m", "obslink", "agent", "rotate-key",
                             str(station.config)], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "OBSLINK_ROTATE_TIMEOUT": "2"})
    assert failed.returncode == 2 and "did not confirm" in failed.stderr
    assert station.private_key.read_bytes() == before


def test_a_batch_below_the_stations_window_is_a_replay_and_a_redelivery_is_acked(deployment):
    station = deployment.add_station("KEYS-4", kind_index=0)
    deployment.start_collector()
    publisher = Publisher(deployment.broker, wire.ack_topic(NETWORK, station.id))
    batches = {seq: signed_batch(station.id, station.private_key, seq=seq, floor=floor)
               for seq, floor in ((4, 0), (5, 0), (6, 6))}
    try:
        publisher.publish(*batches[5])
        wait_until(lambda: len(publisher.acks) == 1, message="the ack of batch 5")
        publisher.publish(*batches[5])  # a redelivery (lost ack): acked, nothing else
        wait_until(lambda: len(publisher.acks) == 2, message="the second ack")
        publisher.publish(*batches[6])  # the station had 5 acked: its window now starts at 6
        wait_until(lambda: len(publisher.acks) == 3, message="the ack of batch 6")
        assert deployment.catalog.count("refusals") == 0
        # below the window: a late copy of a stored batch is a replay ...
        publisher.publish(*batches[5])
        # ... and so is a batch never stored (published after it, so judged after it)
        publisher.publish(*batches[4])
        wait_until(lambda: deployment.catalog.count("refusals") == 2, message="two replays")
        publisher.publish(*batches[6])  # at the window's floor: still a redelivery
        wait_until(lambda: len(publisher.acks) == 4, message="the redelivery's ack")
    finally:
        publisher.close()
    # neither the late copy nor the replay got an answer: the station does not hold them
    assert [ack.committed for ack in publisher.acks] == [[5], [5], [6], [6]]
    assert [ack.refused for ack in publisher.acks] == [[], [], [], []]
    assert deployment.catalog.count("observations") == 2  # each stored once
    refused = deployment.catalog.query("SELECT reason, seq, detail, payload_sha256 FROM "
                                       "refusals ORDER BY id")
    assert [(reason, seq) for reason, seq, _d, _h in refused] == [("replay", 5), ("replay", 4)]
    assert "stored at" in refused[0][2] and "never stored" in refused[1][2]
    # the hash of the message as it came over MQTT, not of the batch inside it
    assert [row[3] for row in refused] == [hashlib.sha256(batches[seq][1]).hexdigest()
                                           for seq in (5, 4)]
    assert deployment.catalog.query("SELECT station, floor FROM replay_floors") == \
        [("KEYS-4", 6)]


def test_an_agents_earlier_batch_published_again_is_refused_not_stored_or_answered(
        deployment):
    """The real agent's floors: a captured batch published again after the station moved
    on (a replay, or a retry that was still on its way) changes nothing in the catalog but
    its refusals, and the station, which does not hold it, gets no answer."""
    station = deployment.add_station("KEYS-7", kind_index=0)
    deployment.start_collector()
    outbox = station.directory / "outbox.db"

    def outbox_empty():
        with contextlib.closing(sqlite3.connect(outbox)) as conn:
            return conn.execute("SELECT count(*) FROM batches").fetchone()[0] == 0

    with listening(deployment.broker.port, wire.data_topic(NETWORK, station.id)) as spied:
        agent = deployment.start_agent(station)
        for records in (1, 2, 3):  # each acked before the next is made
            station.logger.write_next()
            wait_until(lambda: deployment.catalog.count("observations") == 7 * records,
                       message=f"record {records}")
            wait_until(outbox_empty, message="the ack applied in the outbox")
        captured = list(spied)
    first = captured[0].payload
    assert wire.decode_batch(wire.open_envelope(first).body).seq == 1
    publisher = Publisher(deployment.broker)
    try:
        publisher.publish(captured[0].topic, first)
        station.logger.write_next()  # judged after the copy: its commit marks the copy done
        wait_until(lambda: deployment.catalog.count("observations") == 28, message="record 4")
    finally:
        publisher.close()
    assert deployment.catalog.query("SELECT reason, seq FROM refusals") == [("replay", 1)]
    assert deployment.catalog.query("SELECT count(*), count(DISTINCT seq) FROM batches") == \
        [(4, 4)]
    assert "parked" not in agent.log()


def test_malformed_misaddressed_and_oversized_messages_are_refused(deployment):
    station = deployment.add_station("KEYS-5", kind_index=0)
    deployment.start_collector()
    publisher = Publisher(deployment.broker)
    topic = wire.data_topic(NETWORK, station.id)
    try:
        publisher.publish(topic, b"\x93junk")
        # signed with the station's key for its own topic, but naming another station
        publisher.publish(*signed_batch("KEYS-6", station.private_key, seq=1,
                                        topic_station=station.id))
        publisher.publish(topic, b"\x00" * (wire.MAX_ENVELOPE_BYTES + 1))
        wait_until(lambda: deployment.catalog.count("refusals") == 3, message="3 refusals")
    finally:
        publisher.close()
    counts = json.loads(obslink("collector", "refusals", "--db", str(deployment.catalog_path),
                                "--json").stdout)["counts"]
    assert counts == {"malformed": 1, "wrong-topic": 1, "oversized": 1}
    assert deployment.catalog.count("observations") == 0


def test_a_copy_of_a_batch_the_station_reported_evicted_is_a_replay(deployment):
    """Batches 3-5 were evicted by the station's outbox and reported as a gap: a copy of
    batch 4 can only be a captured one, even above the window's floor."""
    station = deployment.add_station("KEYS-8", kind_index=0)
    key = load_private_key(station.private_key)
    deployment.start_collector()
    gap = wire.GapReport(station.id, "e1", 1, 3, 5, 3, 21, None, None, "size-cap", now_us())
    gap_topic = wire.gap_topic(NETWORK, station.id)
    publisher = Publisher(deployment.broker, wire.ack_topic(NETWORK, station.id))
    try:
        publisher.publish(gap_topic, wire.sign(wire.encode_gap(gap), gap_topic, key,
                                               key_id(key.public_key())))
        wait_until(lambda: deployment.catalog.count("gaps") == 1, message="the gap report")
        publisher.publish(*signed_batch(station.id, station.private_key, seq=4, floor=2))
        publisher.publish(*signed_batch(station.id, station.private_key, seq=6, floor=2))
        wait_until(lambda: deployment.catalog.count("observations") == 1, message="batch 6")
        wait_until(lambda: deployment.catalog.count("refusals") == 1, message="the replay")
    finally:
        publisher.close()
    reason, seq, detail = deployment.catalog.query("SELECT reason, seq, detail FROM refusals")[0]
    assert (reason, seq) == ("replay", 4)
    assert "evicted by the station's outbox (gap report 1, size-cap)" in detail
    assert all(not ack.refused for ack in publisher.acks)  # no answer: nothing to park
