"""The uplink's wait for an ack follows the acks' round trip (RFC 6298), within limits."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st

from obslink import wire
from obslink.agent.ack_timer import AckTimer
from obslink.agent.outbox import Outbox
from obslink.agent.uplink import BACKLOG, InFlight, Uplink
from obslink.keys import load_private_key
from obslink.readings import now_us
from tests.test_lanes import agent_config


def test_the_wait_starts_at_the_configured_timeout_and_follows_slow_acks():
    timer = AckTimer(30.0, 600.0)
    assert timer.timeout() == 30.0
    for _ in range(20):  # quick acks never shorten it below the configured wait
        timer.sample(0.05)
    assert timer.timeout() == 30.0
    for _ in range(20):  # a drain queues acks for about 50 s: the wait goes past that
        timer.sample(50.0)
    assert 50.0 < timer.timeout() < 100.0
    timer.sample(10_000.0)
    assert timer.timeout() == 600.0


@given(st.lists(st.floats(0, 1e6), max_size=50))
def test_the_wait_stays_within_its_limits(round_trips):
    timer = AckTimer(30.0, 600.0)
    for round_trip in round_trips:
        timer.sample(round_trip)
        assert 30.0 <= timer.timeout() <= 600.0


def test_an_uplink_measures_first_publications_only(tmp_path, broker):
    config = agent_config(tmp_path, broker)
    uplink = Uplink(config, Outbox(config.outbox_path, config.station),
                    load_private_key(config.private_key))
    sent = time.monotonic() - 50
    # a bundle's two batches (one round trip), and a batch published for the second time
    uplink.in_flight = {1: InFlight(0, 1, BACKLOG, 1, sent), 2: InFlight(0, 1, BACKLOG, 1, sent),
                        3: InFlight(0, 2, BACKLOG, 2, sent - 1000)}
    uplink.take_ack(wire.encode_ack(wire.Ack(uplink.outbox.epoch, committed=[1, 2, 3],
                                             now=now_us())))
    uplink._take_acks()
    assert not uplink.in_flight
    assert 49 < uplink.ack_timer.smoothed < 52  # one sample, not the re-publication's
    assert uplink._backoff(1) > config.ack_timeout * 1.2  # past the fixed wait's jitter
