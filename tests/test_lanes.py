"""Live data first on the wire: the agent marks its lanes, the collector takes live first."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from obslink import wire
from obslink.agent.config import load_config
from obslink.agent.outbox import Outbox
from obslink.agent.uplink import Uplink
from obslink.keys import load_private_key, write_keypair
from obslink.plugins.formats import Decoded
from obslink.plugins.registry import load_registry
from obslink.plugins.sources import ChunkOrigin, SourcePosition
from obslink.plugins.toa5 import TOA5Adapter
from obslink.readings import Reading, now_us
from obslink.server.catalog import SQLiteCatalog
from obslink.server.collector import Collector
from tests.conftest import wait_until

HOUR_US = 3600 * 1_000_000


def commit_batch(outbox: Outbox, observed_at: int) -> None:
    readings = [Reading(observed_at, "air_temperature", 1.5, "degC", "T")]
    outbox.ingest(ChunkOrigin("logger", "a.dat", 0, 10, b""), Decoded(readings, [], 10),
                  SourcePosition(10, "1:2", {}), TOA5Adapter(), 1000)


def agent_config(tmp_path, broker):
    write_keypair(tmp_path / "s.key", tmp_path / "s.pub")
    (tmp_path / "logger").mkdir()
    path = tmp_path / "agent.toml"
    path.write_text(f"""
[station]
id = "LANES1"
network = "lanes"
private_key = "s.key"

[outbox]
path = "outbox.db"

[uplink]
broker = "{broker.url}"

[sources.logger]
type = "directory"
path = "logger"
format = "toa5"
""")
    return load_config(path, load_registry())


def test_live_batches_are_marked_and_the_collector_takes_them_first(tmp_path, broker):
    config = agent_config(tmp_path, broker)
    outbox = Outbox(config.outbox_path, config.station)
    for hours_ago in (30, 29, 28):  # backlog: an outage's worth
        commit_batch(outbox, now_us() - hours_ago * HOUR_US)
    commit_batch(outbox, now_us())  # the minute that just happened

    received: list[mqtt.MQTTMessage] = []
    subscribed = threading.Event()
    listener = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    listener.on_message = lambda client, userdata, message: received.append(message)
    listener.on_subscribe = lambda *args: subscribed.set()
    listener.connect("127.0.0.1", broker.port)
    listener.loop_start()
    listener.subscribe(wire.data_topic("lanes", "LANES1"), qos=1)
    assert subscribed.wait(5)
    uplink = Uplink(config, outbox, load_private_key(config.private_key))
    uplink.start()
    try:
        wait_until(lambda: len(received) == 4, message="four batches published")
    finally:
        uplink.stop()
        listener.loop_stop()
        listener.disconnect()

    lanes = [dict(m.properties.UserProperty)[wire.LANE_PROPERTY] for m in received]
    assert lanes == ["live", "backlog", "backlog", "backlog"]  # live went out first

    # The collector, handed the backlog first and the live batch last, commits live first.
    collector = Collector(SQLiteCatalog(tmp_path / "catalog.db"), "127.0.0.1", broker.port)
    for message in received[1:] + received[:1]:
        collector._on_message(None, None, message)
    group = collector._take_group(timeout=1)
    assert [payload for _topic, payload, _at in group] == \
        [received[0].payload] + [m.payload for m in received[1:]]
    assert collector._take_group(timeout=0.01) == []
