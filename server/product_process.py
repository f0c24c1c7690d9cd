"""The collector's products in a process of their own (docs/products.md): an MQTT connection
with a shared subscription to every station's product topic, the product receiver, the
product store. A MiB chunk then never crosses the pipe between the collector and its MQTT
link process, nor takes turns for the interpreter with the observations' commits; a
product message is verified, written and acknowledged by this process alone.

The process ends when the collector's end of its lifeline pipe closes, a crash included;
it finishes the product messages it has taken first, then says what it did.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from obslink.large_buffers import keep_large_buffers_on_the_heap
from obslink.logs import configure_logging
from obslink.mqtt_tcp import send_without_delay, use_account, use_tls
from obslink.readings import now_us
from obslink.server.mqtt_link import SESSION_EXPIRY_SECONDS, LinkSettings
from obslink.server.product_receiver import ProductReceiver
from obslink.server.product_store import ProductStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProductSettings:
    link: LinkSettings  # its own client id; subscriptions: the product topics
    catalog: str  # the catalog's location, for open_catalog
    store: str  # the product store's root
    decryption_key: bytes | None  # raw X25519: opens products sealed to the collector
    committed_by: str  # the collector's key id


class ProductProcess:
    """The collector's side: starts the process; closing the lifeline ends it."""

    def __init__(self, settings: ProductSettings) -> None:
        context = multiprocessing.get_context("spawn")  # nothing of the catalog is copied
        lifeline, self._lifeline = context.Pipe(duplex=False)
        self.process = context.Process(target=run_products, name="obslink-products",
                                       args=(settings, lifeline), daemon=True)
        self.process.start()
        lifeline.close()  # the child holds the only reading end

    def alive(self) -> bool:
        return self.process.is_alive()

    def close(self, timeout: float = 30) -> None:
        self._lifeline.close()
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


# products yield the CPU to the observations: a radar volume may take a second longer, a
# live minute must not wait behind it (docs/products.md, "Measured")
PRODUCT_NICENESS = 10


def run_products(settings: ProductSettings, lifeline) -> None:
    link = settings.link
    configure_logging(logging.getLevelName(link.log_level), link.log_format)
    keep_large_buffers_on_the_heap()  # every message is a MiB chunk
    try:
        os.nice(PRODUCT_NICENESS)
    except OSError:  # not allowed here: products still flow, at the same priority
        log.warning("products: could not lower this process's priority")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=link.client_id,
                         protocol=mqtt.MQTTv5)
    if link.tls:
        use_tls(client, link.ca_file)
    use_account(client, link.username, link.password_file)
    key = (X25519PrivateKey.from_private_bytes(settings.decryption_key)
           if settings.decryption_key else None)
    receiver = ProductReceiver(settings.catalog, ProductStore(settings.store),
                               lambda topic, payload: client.publish(topic, payload, qos=1),
                               key, settings.committed_by)

    def on_connect(client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the collector's product connection: %s", reason_code)
            return
        send_without_delay(client)
        client.subscribe([(topic, 1) for topic in link.subscriptions])
        log.info("collector ready for products (product process %d): subscribed to %s",
                 os.getpid(), ", ".join(link.subscriptions))

    client.on_connect = on_connect
    client.on_message = lambda client, userdata, message: receiver.put(
        message.topic, message.payload, now_us())
    client.on_connect_fail = lambda client, userdata: log.warning(
        "products: cannot reach broker %s:%d; retrying", link.host, link.port)
    client.reconnect_delay_set(1, 30)
    receiver.start()
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = SESSION_EXPIRY_SECONDS
    client.connect_async(link.host, link.port, keepalive=30, clean_start=False,
                         properties=properties)
    client.loop_start()
    try:
        lifeline.recv_bytes()  # nothing is ever sent: this returns when the collector goes
    except (EOFError, OSError):
        pass
    finally:
        receiver.stop()
        client.disconnect()
        client.loop_stop()
        log.info("products: %d registered, %d chunks stored, %d chunks that came again not "
                 "stored, %d product messages refused", receiver.registered,
                 receiver.chunks_stored, receiver.chunks_again, receiver.refused)
