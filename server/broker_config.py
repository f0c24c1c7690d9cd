"""``obslink collector broker-config``: a closed Mosquitto for the network.

TLS only, no anonymous clients, one account per station (its id as user name) and one for
the collector, and an ACL under which a station may publish only on its own topics and read
only its own acks. Regenerate it after adding stations; Mosquitto reloads on SIGHUP.
"""

from __future__ import annotations

from pathlib import Path

from obslink import wire
from obslink.errors import ConfigError
from obslink.keys import write_secret
from obslink.server.catalog import SQLiteCatalog
from obslink.server.station_records import COLLECTOR_ACCOUNT, StationRecords

ROOT = wire.TOPIC_ROOT

ACL = f"""\
# written by `obslink collector broker-config`; regenerate rather than edit
user {COLLECTOR_ACCOUNT}
topic read {ROOT}/+/+/data
topic read {ROOT}/+/+/gap
topic read {ROOT}/+/+/key
topic read {ROOT}/+/+/status
topic write {ROOT}/+/+/ack

# every station (user name = station id): its own topics only
pattern write {ROOT}/+/%u/data
pattern write {ROOT}/+/%u/gap
pattern write {ROOT}/+/%u/key
pattern readwrite {ROOT}/+/%u/status
pattern read {ROOT}/+/%u/ack
"""

CONFIG = """\
# written by `obslink collector broker-config`
per_listener_settings false
allow_anonymous false
password_file {directory}/passwd
acl_file {directory}/acl
persistence true
persistence_location {directory}/
max_queued_messages 1000000
set_tcp_nodelay true

listener {port} {address}
certfile {certificate}
keyfile {key}
"""


def write_broker_config(catalog_path: Path, directory: Path, tls_directory: Path,
                        port: int = 8883, address: str = "0.0.0.0") -> dict[str, Path]:
    """Write mosquitto.conf, passwd and acl; the collector's password goes to
    collector.password (mode 0600) when its account is created."""
    certificate, key = tls_directory / "server.pem", tls_directory / "server.key"
    for path in (certificate, key):
        if not path.is_file():
            raise ConfigError(f"{path} does not exist; run `obslink collector tls init --dir "
                              f"{tls_directory} --host BROKER_HOST` or pass --tls-dir")
    directory.mkdir(parents=True, exist_ok=True)
    password_file = directory / "collector.password"
    catalog = SQLiteCatalog(catalog_path)
    records = StationRecords(catalog)
    try:
        accounts = dict(records.broker_accounts())
        if COLLECTOR_ACCOUNT not in accounts or not password_file.exists():
            write_secret(password_file, records.collector_password())
        accounts = records.broker_accounts()
        records.record_broker_config(directory)
    finally:
        catalog.close()
    write_secret(directory / "passwd", "".join(f"{user}:{digest}\n"
                                                for user, digest in accounts))
    (directory / "acl").write_text(ACL)
    config = directory / "mosquitto.conf"
    config.write_text(CONFIG.format(directory=directory.resolve(), port=port, address=address,
                                    certificate=certificate.resolve(), key=key.resolve()))
    return {"config": config, "collector_password": password_file,
            "accounts": len(accounts)}
