"""Where messages travel: the MQTT topic layout of protocol version 1 and its names."""

from __future__ import annotations

import re

from obslink.errors import WireError

# The topic root carries the protocol's major version: a version that changes the signed
# bytes or the topic layout gets a new root, so both run side by side during a migration.
TOPIC_VERSION = 1
TOPIC_ROOT = f"obslink/v{TOPIC_VERSION}"
# protocol v2 changes the data messages only (compact batches): they have a root of their
# own, every other message stays where it was
TOPIC_ROOT_V2 = "obslink/v2"
# MQTT 5 user property naming a data message's lane ("live" or "backlog"): scheduling
# advice for the collector, not signed and never trusted for anything else
LANE_PROPERTY = "obslink-lane"
STATION_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
NETWORK_RE = STATION_ID_RE


def check_station_id(station: str) -> str:
    if not isinstance(station, str) or not STATION_ID_RE.match(station):
        raise WireError(
            f"station id {station!r} is not usable in topics: use 1-64 letters, digits, '.', "
            "'_' or '-', starting with a letter or digit (WIGOS ids like 0-20000-0-54511 work)")
    return station


def data_topic(network: str, station: str) -> str:
    return f"{TOPIC_ROOT}/{network}/{station}/data"


def data_topic_v2(network: str, station: str) -> str:
    return f"{TOPIC_ROOT_V2}/{network}/{station}/data"


def ack_topic(network: str, station: str) -> str:
    return f"{TOPIC_ROOT}/{network}/{station}/ack"


def status_topic(network: str, station: str) -> str:
    return f"{TOPIC_ROOT}/{network}/{station}/status"


def gap_topic(network: str, station: str) -> str:
    return f"{TOPIC_ROOT}/{network}/{station}/gap"


def key_topic(network: str, station: str) -> str:
    return f"{TOPIC_ROOT}/{network}/{station}/key"


def product_topic(network: str, station: str) -> str:
    """Where a station publishes its products' manifests and chunks (docs/protocol.md)."""
    return f"{TOPIC_ROOT}/{network}/{station}/product"


def product_ack_topic(network: str, station: str) -> str:
    """Where the collector says which chunks of a station's products it holds."""
    return f"{TOPIC_ROOT}/{network}/{station}/product-ack"


def alarm_topic(network: str, station: str, rule: str) -> str:
    """Where the collector keeps a station's alarm of ``rule`` (retained; docs/monitoring.md)."""
    return f"{TOPIC_ROOT}/{network}/{station}/alarm/{rule}"


def alarm_subscription(network: str = "+") -> str:
    return f"{TOPIC_ROOT}/{network}/+/alarm/+"


def collector_subscription(group: str, network: str = "+", kind: str = "data",
                           root: str = TOPIC_ROOT) -> str:
    """MQTT 5 shared subscription: N collector workers in ``group`` share the data (or gap)
    topics."""
    return f"$share/{group}/{root}/{network}/+/{kind}"


def is_v2_topic(topic: str) -> bool:
    return topic.startswith(TOPIC_ROOT_V2 + "/")


def parse_data_topic(topic: str, kind: str = "data") -> tuple[str, str]:
    """``obslink/v1/NET/STATION/data`` (or ``…/gap``; ``obslink/v2/…/data``) → (network,
    station)."""
    parts = topic.split("/")
    root = "/".join(parts[:2])
    if len(parts) != 5 or parts[4] != kind or not (
            root == TOPIC_ROOT or (root == TOPIC_ROOT_V2 and kind == "data")):
        raise WireError(f"topic {topic!r} is not {TOPIC_ROOT}/<network>/<station>/{kind}"
                        + (f" or {TOPIC_ROOT_V2}/<network>/<station>/data"
                           if kind == "data" else ""))
    return parts[2], parts[3]
