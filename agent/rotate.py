"""``obslink agent rotate-key``: move a station to a new key without losing a batch.

The new key is announced on the station's key topic, signed with the current key; only when
the collector's ack confirms it is registered does the new key replace the key file (the old
one is kept beside it as ``.old``). A running agent notices the new file and signs with it
from then on; what the old key signed stays valid at the collector for its grace period.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from obslink import wire
from obslink.agent.config import AgentConfig
from obslink.agent.outbox import Outbox
from obslink.errors import TransportError, WireError
from obslink.keys import (key_id, load_private_key, public_bytes, write_keypair,
                          x25519_public_key_from_hex)
from obslink.mqtt_tcp import use_account, use_tls
from obslink.readings import now_us


def rotate_key(config: AgentConfig, timeout: float = 30.0) -> tuple[str, str]:
    """Announce a new key and install it once confirmed. Returns (old, new) key ids."""
    current = config.private_key
    old_key = load_private_key(current)
    pending = _sibling(current, ".next")
    new_id = write_keypair(pending, _sibling(current.with_suffix(".pub"), ".next"),
                           overwrite=True)
    new_key = load_private_key(pending)
    outbox = Outbox(config.outbox_path, config.station, config.synchronous, create=False)
    epoch = outbox.epoch
    outbox.close()
    topic = wire.key_topic(config.network, config.station)
    announcement = wire.sign(wire.encode_key_rotation(wire.KeyRotation(
        config.station, epoch, new_id, public_bytes(new_key.public_key()), now_us())),
        topic, old_key, key_id(old_key.public_key()))
    if config.encrypt_to:
        announcement = wire.seal(announcement, topic,
                                  x25519_public_key_from_hex(config.encrypt_to))
    if not _confirmed(config, announcement, topic, new_id, timeout):
        raise TransportError(f"the collector did not confirm the new key {new_id} within "
                             f"{timeout:.0f} s; the station keeps key "
                             f"{key_id(old_key.public_key())}. Is the collector running? "
                             f"Run the command again")
    _replace(current, pending)
    return key_id(old_key.public_key()), new_id


def _confirmed(config: AgentConfig, announcement: bytes, topic: str, new_id: str,
               timeout: float) -> bool:
    confirmed, subscribed = threading.Event(), threading.Event()

    def on_message(client, userdata, message) -> None:
        try:
            if new_id in wire.decode_ack(message.payload).keys:
                confirmed.set()
        except WireError:
            pass

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{config.client_id}-rotate",
                         protocol=mqtt.MQTTv5)
    if config.tls:
        use_tls(client, str(config.ca_file) if config.ca_file else None)
    use_account(client, config.username, config.password_file)
    client.on_message = on_message
    client.on_subscribe = lambda *args: subscribed.set()
    try:
        client.connect(config.broker_host, config.broker_port, keepalive=30)
    except OSError as exc:
        raise TransportError(f"cannot reach broker {config.broker_host}:"
                             f"{config.broker_port}: {exc}") from None
    client.loop_start()
    try:
        client.subscribe(wire.ack_topic(config.network, config.station), qos=1)
        subscribed.wait(timeout)
        client.publish(topic, announcement, qos=1)
        return confirmed.wait(timeout)
    finally:
        client.loop_stop()
        client.disconnect()


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _replace(current: Path, pending: Path) -> None:
    """Keep the old pair as .old, then move the new pair in (each rename is atomic)."""
    public = current.with_suffix(".pub")
    for path in (current, public):
        if path.exists():
            os.replace(path, _sibling(path, ".old"))
    os.replace(_sibling(public, ".next"), public)
    os.replace(pending, current)
