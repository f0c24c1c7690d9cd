"""Radar products end to end, with real processes and a real Mosquitto: every product
arrives byte-identical through agent kills, collector kills and a broker restart, a chunk is
never stored twice, a tampered chunk is refused, and a product too large for the outbox is
refused at the source and reported as a gap."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import random
import time
from pathlib import Path

import msgpack
import pytest

from obslink import wire
from obslink.demo.radar_products import RadarScan, cinrad_tilt_name, write_cinrad
from obslink.keys import key_id, load_private_key
from obslink.server.product_store import ProductStore, default_product_store
from obslink.demo.broker import Mosquitto
from obslink.server.catalog import open_catalog
from tests.conftest import NETWORK, Deployment, admin_http, wait_until
from tests.test_catalog_api import serve

pytestmark = pytest.mark.e2e

CHUNK = 64 * 1024  # small chunks: a product is many of them, and kills land mid-product


def radar_station(deployment, station_id: str, extra: str = "") -> tuple[Path, Path]:
    products = deployment.base / station_id / "radar"
    products.mkdir(parents=True)
    config = deployment.add_station_with_sources(station_id, "UTC", f"""\
product_chunk_bytes = {CHUNK}
product_in_flight = 4
{extra}
[products.radar]
path = "{products}"
format = "cinrad"
pattern = "*.bz2"
settle_seconds = 0.2
poll_interval = 0.2
""")
    return config, products


def write_products(directory: Path, count: int, seed: int = 0, cuts: int = 3) -> list[Path]:
    """Volumes of a few tilts (~0.5 MB compressed each), written under a temporary name and
    renamed, as radars do."""
    paths = []
    for number in range(count):
        scan = RadarScan(start_s=1_796_000_400 + 360 * (number + seed * 100),
                         elevations=(0.5, 1.5, 2.4, 3.4)[:cuts], radials=360, gates=600,
                         seed=seed * 100 + number)
        final = directory / cinrad_tilt_name(scan, 0)
        temporary = directory / (final.name + ".part")
        write_cinrad(temporary, scan)
        os.replace(temporary, final)
        paths.append(final)
    return paths


def stored(deployment) -> dict[str, str]:
    """name -> sha256 of the registered products."""
    return dict(deployment.catalog.query("SELECT name, sha256 FROM products"))


def assert_all_arrived(deployment, paths: list[Path], timeout: float = 120) -> None:
    wait_until(lambda: len(stored(deployment)) >= len(paths), timeout=timeout,
               message=f"{len(paths)} products registered")
    time.sleep(1)  # a second copy would be registered now
    assert deployment.catalog.count("products") == len(paths)
    records = stored(deployment)
    store = product_store(deployment)
    for path in paths:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert records[path.name] == digest
        assert store.path_of(digest).read_bytes() == path.read_bytes()
    assert not list((store.root / "incoming").rglob("*.part"))


def product_store(deployment) -> ProductStore:
    """The deployment's store: beside a SQLite catalog, where collector_file_options puts
    it for a catalog URL."""
    location = str(deployment.catalog_path)
    return ProductStore(deployment.base / "products" if "://" in location
                        else default_product_store(location))


def chunks_of(paths: list[Path]) -> int:
    return sum(-(-path.stat().st_size // CHUNK) for path in paths)


def collector_counts(deployment) -> tuple[int, int]:
    """(chunks stored, chunks that came again) from the stopped collector's last line."""
    line = [line for line in deployment.collector.log().splitlines()
            if "chunks stored" in line][-1]
    words = line.split("products: ")[1].split()
    return int(words[2]), int(words[5])


SLOW_LINK = "product_bytes_per_s = 200000\n"  # ~3 MB of products take 15 s or more


def test_products_arrive_whole_through_ten_agent_kills(deployment):
    config, directory = radar_station(deployment, "RADAR-KILL", SLOW_LINK)
    deployment.start_collector()
    agent = deployment.run_agent(config)
    paths = write_products(directory, 6)
    rng = random.Random(10)
    for _ in range(10):  # SIGKILL while products are copied in and their chunks in flight
        time.sleep(rng.uniform(0.2, 0.8))
        assert deployment.catalog.count("products") < len(paths)  # still in flight
        agent.kill()
        agent = deployment.run_agent(config)
    assert_all_arrived(deployment, paths)
    deployment.collector.stop()
    chunks_stored, _again = collector_counts(deployment)
    assert chunks_stored == chunks_of(paths)  # each chunk written once, whatever came again
    assert deployment.catalog.count("refusals") == 0
    downloads_match(deployment, paths)
    verified = subprocess.run([sys.executable, "-m", "obslink", "catalog", "verify", "--db",
                               str(deployment.catalog_path), "--json"],
                              capture_output=True, text=True, timeout=120)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    report = json.loads(verified.stdout)
    assert report["products"] == len(paths) and report["leaves"] == len(paths)


def test_two_workers_share_products_each_registered_once(deployment_on_each_backend):
    """Two collector workers share the product topics (one shared subscription): a
    product's manifest and chunks are spread over both workers' product processes, which
    share the store and the catalog; one or the other is SIGKILLed mid-product and started
    again. Every product is registered once, byte-identical, and both workers keep taking
    products to the end."""
    deployment = deployment_on_each_backend
    config, directory = radar_station(deployment, "RADAR-WORKERS")
    workers = [deployment.start_collector(), deployment.start_worker(1)]
    deployment.run_agent(config)
    paths = write_products(directory, 8, seed=4)
    rng = random.Random(23)
    for _ in range(4):
        time.sleep(rng.uniform(0.3, 0.9))
        number = rng.randrange(2)
        workers[number].kill()
        workers[number] = deployment.start_worker(number, previous=workers[number])
    paths += write_products(directory, 8, seed=5)  # both workers up, nothing killed
    assert_all_arrived(deployment, paths)
    assert all(worker.alive() for worker in workers)
    logs = "".join(worker.log() for worker in workers)
    assert "Traceback" not in logs, logs[-3000:]
    assert deployment.catalog.count("refusals") == 0
    # nothing staged is left behind (a kill may leave a temporary file, never a staging)
    incoming = product_store(deployment).root / "incoming"
    assert not [path for path in incoming.rglob("*") if path.is_file()
                and path.suffix != ".tmp"]
    verified = subprocess.run([sys.executable, "-m", "obslink", "catalog", "verify", "--db",
                               str(deployment.catalog_path), "--product-store",
                               str(product_store(deployment).root), "--json"],
                              capture_output=True, text=True, timeout=120)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["products"] == len(paths)


def downloads_match(deployment, paths: list[Path]) -> None:
    """Listed with their metadata, downloaded whole and by range over HTTP."""
    url, http = serve(deployment.catalog_path, deployment.base)
    try:
        listed, link = [], f"{url}/v1/products?limit=4&datetime=2026-01-01T00:00:00Z/.."
        while link:
            page = admin_http.get(link, timeout=30).json()
            listed += page["products"]
            link = page.get("next")
        by_name = {product["name"]: product for product in listed}
        assert sorted(by_name) == sorted(path.name for path in paths)
        for path in paths:
            record = by_name[path.name]
            assert record["metadata"]["site"] == "Z9010" and record["format"] == "cinrad"
            shown = admin_http.get(record["links"][0]["href"], timeout=30).json()
            assert shown["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
            data = admin_http.get(record["links"][1]["href"], timeout=30)
            assert data.content == path.read_bytes()
            part = admin_http.get(record["links"][1]["href"], timeout=30,
                                headers={"Range": "bytes=1000-1999"})
            assert part.status_code == 206 and part.content == path.read_bytes()[1000:2000]
            chain = admin_http.get(record["links"][2]["href"], timeout=30).json()
            assert chain["kind"] == "product" and chain["signature"]["valid"]
        station = listed[0]["station"]
        dataset = admin_http.get(f"{url}/v1/datasets/obslink:{station}/radar", timeout=30)
        assert dataset.json()["time"] is not None
        assert admin_http.get(f"{url}/v1/products/obslink:{station}/nope/p1",
                            timeout=30).status_code == 404
    finally:
        http.stop()


def test_products_survive_collector_kills_and_a_broker_restart(tmp_path):
    broker = Mosquitto(tmp_path / "own-broker").start()
    deployment = Deployment(tmp_path / "deployment", broker)
    open_catalog(deployment.catalog_path).close()
    try:
        config, directory = radar_station(deployment, "RADAR-CENTRE", SLOW_LINK)
        deployment.start_collector()
        deployment.run_agent(config)
        paths = write_products(directory, 4, seed=1)
        wait_until(lambda: deployment.catalog.count("products") >= 1, timeout=60,
                   message="a first product")
        deployment.collector.kill()  # mid-product: chunks staged, more in flight
        staged = ProductStore(default_product_store(str(deployment.catalog_path)))
        assert list((staged.root / "incoming").rglob("*.have"))
        deployment.start_collector()
        time.sleep(0.5)
        deployment.collector.kill()
        broker.stop()  # the broker restarts while products are in flight
        time.sleep(1.0)
        broker.start()
        assert deployment.catalog.count("products") < len(paths)
        deployment.start_collector()
        assert_all_arrived(deployment, paths)
    finally:
        deployment.stop_all()
        broker.stop()


def test_a_tampered_chunk_is_refused_and_the_product_still_arrives_intact(deployment):
    config, directory = radar_station(deployment, "RADAR-TAMPER")
    deployment.start_collector()
    # an attacker without the key changes a chunk's signed header (which chunk, its digest)
    # and republishes it under the station's signature
    key = load_private_key(config.parent / "station.key")
    topic = wire.product_topic(NETWORK, "RADAR-TAMPER")
    data = b"x" * 100
    genuine = msgpack.unpackb(wire.sign(wire.encode_chunk(wire.Chunk(
        "RADAR-TAMPER", "e", 0, 0, hashlib.sha256(data).digest(), data)), topic, key,
        key_id(key.public_key()), data))
    header = msgpack.unpackb(genuine["body"])
    header["index"] = 1
    tampered = msgpack.packb({**genuine, "body": msgpack.packb(header)})
    import paho.mqtt.publish as publish

    publish.single(topic, tampered, qos=1, hostname="127.0.0.1", port=deployment.broker.port)
    deployment.run_agent(config)
    paths = write_products(directory, 2, seed=2)
    assert_all_arrived(deployment, paths)
    wait_until(lambda: deployment.catalog.query(
        "SELECT count(*) FROM refusals WHERE reason = 'bad-signature'")[0][0] == 1,
        timeout=30, message="the tampered chunk refused")


def test_a_product_larger_than_the_outbox_room_is_refused_and_reported_as_a_gap(deployment):
    config, directory = radar_station(deployment, "RADAR-ROOM", "[outbox]\n"
                                      "product_max_bytes = 200000\n")
    deployment.start_collector()
    deployment.run_agent(config)
    [big] = write_products(directory, 1, seed=3, cuts=4)
    assert big.stat().st_size > 200_000
    wait_until(lambda: deployment.catalog.count("product_gaps") == 1, timeout=60,
               message="the gap report")
    [(name, size, reason, detail)] = deployment.catalog.query(
        "SELECT name, size, reason, detail FROM product_gaps")
    assert (name, size, reason) == (big.name, big.stat().st_size, "product-too-large")
    assert "product_max_bytes" in detail
    assert deployment.catalog.count("products") == 0
    status = json.loads(subprocess.run(
        [sys.executable, "-m", "obslink", "agent", "status", str(config), "--json"],
        capture_output=True, text=True, check=True, timeout=60).stdout)["products"]
    assert status["gaps"] == 1 and status["recent_gaps"][0]["reason"] == "product-too-large"
    assert status["recent_gaps"][0]["reported_at"] is not None


class TamperingProxy:
    """A TCP proxy between the station and the broker that changes the last byte (a chunk's
    data: the envelope's last field) of the first large PUBLISH it forwards, once."""

    def __init__(self, broker_port: int) -> None:
        import socket
        import threading

        self.broker_port, self.tampered = broker_port, 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            broker = socket.create_connection(("127.0.0.1", self.broker_port))
            threading.Thread(target=self._upstream, args=(client, broker), daemon=True).start()
            threading.Thread(target=self._copy, args=(broker, client), daemon=True).start()

    @staticmethod
    def _copy(source, target) -> None:
        try:
            while data := source.recv(1 << 16):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                try:
                    sock.close()
                except OSError:
                    pass

    def _upstream(self, client, broker) -> None:
        """Forward whole MQTT packets, reading each one's fixed header."""
        buffer = bytearray()
        try:
            while data := client.recv(1 << 16):
                buffer += data
                while (packet := self._packet(buffer)) is not None:
                    broker.sendall(packet)
        except OSError:
            pass
        finally:
            for sock in (client, broker):
                try:
                    sock.close()
                except OSError:
                    pass

    def _packet(self, buffer: bytearray) -> bytes | None:
        length, multiplier, position = 0, 1, 1
        while True:
            if position >= len(buffer):
                return None
            byte = buffer[position]
            length += (byte & 0x7F) * multiplier
            multiplier *= 128
            position += 1
            if not byte & 0x80:
                break
        end = position + length
        if len(buffer) < end:
            return None
        packet = bytearray(buffer[:end])
        del buffer[:end]
        with self.lock:
            if packet[0] >> 4 == 3 and length > 50_000 and not self.tampered:
                packet[-1] ^= 0xFF
                self.tampered += 1
        return bytes(packet)

    def close(self) -> None:
        self.listener.close()


def test_a_chunk_changed_on_the_way_is_refused_and_sent_again(deployment):
    proxy = TamperingProxy(deployment.broker.port)
    try:
        config, directory = radar_station(deployment, "RADAR-WIRE")
        text = config.read_text().replace(deployment.broker.url,
                                          f"mqtt://127.0.0.1:{proxy.port}")
        config.write_text(text.replace("ack_timeout = 5", "ack_timeout = 60"))
        deployment.start_collector()
        deployment.run_agent(config)
        paths = write_products(directory, 1, seed=4)
        # sent again at once on the collector's word, not after the 60 s ack timeout
        assert_all_arrived(deployment, paths, timeout=30)
        assert proxy.tampered == 1
        deployment.collector.stop()
        assert "changed on the way" in deployment.collector.log()
        chunks_stored, _again = collector_counts(deployment)
        assert chunks_stored == chunks_of(paths)
    finally:
        proxy.close()
