"""The agent's settings, declared once (obslink.settings): read and checked by
obslink.agent.config, shown in docs/configuration.md (obslink.agent.config_docs). Checks
that relate several keys (ack_timeout_max against ack_timeout, username with password_file,
ca_file with a TLS broker) are in the reader."""

from __future__ import annotations

from obslink.agent.outbox import EVICTION_POLICIES
from obslink.errors import WireError
from obslink.keys import x25519_public_key_from_hex
from obslink.mqtt_tcp import parse_broker_url
from obslink.readings import parse_utc_offset
from obslink.settings import REQUIRED, Setting
from obslink.wire import MAX_BUNDLE_BATCHES, MAX_CHUNK_BYTES, NETWORK_RE, check_station_id


def _station_id(value) -> str:
    if not value:
        raise WireError("required: the station's id, e.g. its WIGOS identifier 0-20000-0-54511")
    return check_station_id(value)


def _network(value) -> str:
    if not NETWORK_RE.match(value):
        raise ValueError(f"{value!r} is not a usable network name (letters, digits, '.', "
                         "'_', '-')")
    return value


def _synchronous(value) -> str:
    if str(value).upper() not in ("FULL", "NORMAL"):
        raise ValueError(f"must be FULL (survives power cuts) or NORMAL, not {value!r}")
    return str(value).upper()


def _eviction_policy(value) -> str:
    if value not in EVICTION_POLICIES:
        raise ValueError(f"{value!r} is not an eviction policy; choose "
                         f"{' or '.join(EVICTION_POLICIES)} (docs/configuration.md)")
    return value


def _bundle(value) -> int:
    if value > MAX_BUNDLE_BATCHES:
        raise ValueError(f"{value} is above {MAX_BUNDLE_BATCHES}, the most a collector takes "
                         "in one bundle")
    return value


def _protocol(value) -> int:
    if value not in (1, 2):
        raise ValueError(f"{value} is not a protocol version this agent speaks (1 or 2)")
    return value


def _chunk_bytes(value) -> int:
    if value > MAX_CHUNK_BYTES:
        raise ValueError(f"{value} is above {MAX_CHUNK_BYTES}, the largest chunk a collector "
                         "takes")
    return value


def _collector_key(value) -> str:
    x25519_public_key_from_hex(value)
    return value


def utc_offset(value) -> int:
    return parse_utc_offset(str(value))


def _listen(text) -> str:
    host, sep, port = str(text).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r}: give HOST:PORT, e.g. 127.0.0.1:9108")
    return str(text)


STATION = (
    Setting("id", "", "station id known to the collector (e.g. WIGOS `0-20000-0-54511`); "
            "1-64 of `A-Z a-z 0-9 . _ -`", parse=_station_id, shown_default="required"),
    Setting("network", "default", "network name, part of the MQTT topics", parse=_network),
    Setting("private_key", REQUIRED, "Ed25519 private key file from `obslink agent keygen`",
            kind="path", required="a file path (relative paths are relative to the config)"),
    Setting("utc_offset", "UTC", "the logger clock's fixed offset from UTC (`+08:00`, "
            "`-0530`, `UTC`); sources may override it", parse=utc_offset),
    Setting("metrics_listen", None, "`HOST:PORT` where the agent serves Prometheus metrics "
            "(outbox depth by lane, oldest unacknowledged age, quarantined records, "
            "evictions, broker connection; docs/monitoring.md); needs the `metrics` extra "
            "(`pip install obslink[metrics]`)", parse=_listen,
            shown_default="off"),
)

OUTBOX = (
    Setting("path", "outbox.db", "SQLite file where readings wait for the collector's "
            "acknowledgement; its directory must exist", kind="path"),
    Setting("synchronous", "FULL", "`FULL`: every commit survives a power cut. `NORMAL`: "
            "faster, may lose the last commits on power loss (never corrupts). Measured cost "
            "(`bench/run.py`, 2-core VM, SSD): one logger record committed with QC in 0.64 ms "
            "with FULL against 0.46 ms with NORMAL (1.4×); on an SD card the fsync FULL adds "
            "weighs more", parse=_synchronous),
    Setting("max_batch_readings", 5000, "readings per batch at most", kind="int"),
    Setting("max_bytes", 1 << 30, "encoded batches waiting, at most; beyond it batches are "
            "evicted by `evict` and reported to the centre as a gap", kind="int",
            shown_default="`1073741824` (1 GiB)"),
    Setting("max_age", 30 * 86_400, "seconds a batch may wait; older ones are evicted "
            "(reason `retention`) and reported as a gap", kind="int",
            shown_default="`2592000` (30 days)"),
    Setting("evict", "oldest", "what goes when a cap is reached: `oldest` (the oldest backlog "
            "first) or `thin` (every other batch of the older half of the backlog, so an "
            "outage keeps coverage at half resolution). Only the newest batch of a commit is "
            "never evicted, so the outbox holds at most `max_bytes` and one batch, even when "
            "one read makes several batches (a day's file after an outage)",
            parse=_eviction_policy),
    Setting("product_max_bytes", 2 << 30, "bytes of products (radar volumes) the outbox "
            "holds at most; a product larger than this is refused at the source and reported "
            "to the centre as a gap, and for a newer product older undelivered ones are "
            "evicted (also reported); docs/products.md", kind="int",
            shown_default="`2147483648` (2 GiB)"),
    Setting("product_dir", None, "directory where products wait (their copies and their "
            "index); created if missing", kind="path",
            shown_default="`<path>.products` beside the outbox"),
    Setting("min_free_disk", 64 << 20, "bytes to leave free on the outbox's filesystem (0: "
            "no watermark). Below it (counting the room the outbox's write-ahead log may "
            "still take) the outbox stops growing: it evicts a tenth of the waiting backlog "
            "(reason `disk-full`, reported as a gap) and reuses that space for the newest "
            "readings", kind="int", zero_means="no watermark",
            shown_default="`67108864` (64 MiB)"),
)

UPLINK = (
    Setting("broker", "mqtt://127.0.0.1:1883", "broker URL; `mqtts://host:8883` for TLS",
            parse=parse_broker_url),
    Setting("username", None, "the station's broker account on a closed broker (`obslink "
            "collector broker-config`): its station id"),
    Setting("password_file", None, "file holding that account's password (`obslink agent "
            "enrol` writes `broker.password` beside the key; or `obslink collector station "
            "credentials ID --out FILE`)", kind="path"),
    Setting("ca_file", None, "with `mqtts://`: the CA certificate that signed the broker's "
            "(the network's `ca.pem` from `obslink collector tls init`); relative to this "
            "file", kind="path", shown_default="system CAs"),
    Setting("client_id", None, "MQTT client id; must be stable (the broker keeps the session "
            "under it)", shown_default="`obslink-agent-<network>-<station>`"),
    Setting("keepalive", 30, "MQTT keepalive, seconds (more than 4)", kind="int", minimum=4),
    Setting("ack_timeout", 30.0, "shortest wait, in seconds, for the collector's ack before "
            "publishing a batch again. When acks take longer (a fleet draining a backlog "
            "queues them), the wait follows their smoothed round trip plus four times its "
            "variation, as TCP's retransmission timer does, so the station does not send "
            "copies the collector must check again. Each further attempt waits twice as long "
            "(±20 % jitter)", kind="number"),
    Setting("ack_timeout_max", 600.0, "longest wait between publications of an "
            "unacknowledged batch", kind="number"),
    Setting("max_in_flight", 64, "messages published and not yet acknowledged, at most (a "
            "message is one batch, or a bundle of backlog batches)", kind="int"),
    Setting("realtime_window", 600.0, "seconds: a batch whose newest reading is younger is "
            "live and goes first, newest first; older batches are backlog", kind="number"),
    Setting("backlog_in_flight", 2, "backlog messages published and not yet acknowledged, at "
            "most (part of `max_in_flight`): across a fleet, this is what live data can queue "
            "behind at the broker and the collector", kind="int"),
    Setting("backlog_bundle", 32, "backlog batches sent together in one message under one "
            "signature (a bundle), at most 256; used once the collector's acks say it takes "
            "bundles (until then, and with `1`, every batch travels alone). Each batch keeps "
            "its own identity and ack; docs/protocol.md", kind="int", parse=_bundle),
    Setting("protocol", 2, "the highest data protocol the agent speaks: 2 sends compact "
            "batches (a few bytes a reading, for NB-IoT and metered links) once the "
            "collector's acks announce it, and v1 until then; 1 keeps v1; docs/protocol.md",
            kind="int", parse=_protocol),
    Setting("encrypt_to", None, "the collector's X25519 public key (64 hex digits; `obslink "
            "agent enrol` saves it as `collector_encryption_key`): every message is sealed to "
            "it (X25519 + ChaCha20-Poly1305, docs/protocol.md), for networks whose brokers the "
            "operator does not control. The signature inside still covers what the station "
            "produced", parse=_collector_key),
    Setting("backlog_readings_per_s", 5000.0, "rate cap of the backlog drain, readings/s (0: "
            "no cap); live batches are never held back", kind="number", zero_means="no cap"),
    Setting("backlog_bytes_per_s", 0.0, "rate cap of the backlog drain, bytes/s (0: no cap), "
            "for metered links", kind="number", zero_means="no cap"),
    Setting("product_bytes_per_s", 0.0, "bandwidth cap for products (radar volumes), "
            "bytes/s (0: no cap); observations are never held back by products",
            kind="number", zero_means="no cap"),
    Setting("product_in_flight", 4, "product chunks published and not yet acknowledged, at "
            "most", kind="int"),
    Setting("product_chunk_bytes", 1 << 20, "bytes per product chunk, at most 1048576 "
            "(1 MiB); smaller chunks suit slow links", kind="int", parse=_chunk_bytes,
            shown_default="`1048576` (1 MiB)"),
    Setting("reconnect_min", 1.0, "first reconnect delay, seconds", kind="number"),
    Setting("reconnect_max", 60.0, "longest reconnect delay, seconds", kind="number"),
)

# Every source's own keys; the source type declares the rest (its declared_settings). The
# reader checks type, format, options and elements against the installed plugins itself.
SOURCE = (
    Setting("type", REQUIRED, "source type (`obslink plugins` lists them)"),
    Setting("format", REQUIRED, "format adapter (`obslink plugins` lists them)"),
    Setting("utc_offset", None, "offset of this source's clock from UTC",
            parse=utc_offset, shown_default="the station's"),
    Setting("options", None, "table of format options", shown_default="`{}`"),
    Setting("elements", None, "table mapping source fields onto the element vocabulary: "
            '`"AirTC_Avg" = "air_temperature"` or `"BP_mbar" = { element = "air_pressure", '
            'unit = "hPa" }`', shown_default="`{}`"),
)

# [products.NAME]: a directory a radar gateway writes products into (docs/products.md)
PRODUCTS = (
    Setting("path", REQUIRED, "directory the radar (or its gateway) writes product files "
            "into", kind="path", required="the directory the products are written to"),
    Setting("format", REQUIRED, "product format: `cinrad` (CMA standard base data) or "
            "`nexrad2` (NEXRAD Level II volumes and real-time chunks); `obslink plugins` lists "
            "them"),
    Setting("pattern", "*", "glob of the product files, e.g. `*.bz2`"),
    Setting("settle_seconds", 2.0, "a file is taken once it has not changed this long",
            kind="number"),
    Setting("poll_interval", 1.0, "seconds between looks at the directory", kind="number"),
)
