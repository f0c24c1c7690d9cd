"""``obslink collector broker-config``: a closed Mosquitto for the network.

TLS only, no anonymous clients, one account per station (its id as user name) and one for
the collector, and an ACL under which a station may publish only on its own topics and read
only its own acks. Regenerate it after adding stations; Mosquitto reloads on SIGHUP.

Started as root, Mosquitto drops to the account named by ``user`` as soon as it has read
its configuration, and only then reads the password file, the ACL and the TLS key: every
file it needs must belong to that account. The configuration names the account (by default
``mosquitto`` when written by root, else whoever writes it), the files it needs (the
certificate and key copied beside it) belong to it, and the directory must be reachable by
it; so it starts as written, by root or by that account.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
from pathlib import Path

from obslink import wire
from obslink.errors import ConfigError
from obslink.keys import share_owner, write_secret
from obslink.server.catalog import open_catalog
from obslink.server.catalog.broker_passwords import COLLECTOR_ACCOUNT

ROOT = wire.TOPIC_ROOT
ROOT_V2 = wire.TOPIC_ROOT_V2

ACL = f"""\
# written by `obslink collector broker-config`; regenerate rather than edit
user {COLLECTOR_ACCOUNT}
topic read {ROOT}/+/+/data
topic read {ROOT_V2}/+/+/data
topic read {ROOT}/+/+/gap
topic read {ROOT}/+/+/key
topic read {ROOT}/+/+/status
topic read {ROOT}/+/+/product
topic write {ROOT}/+/+/ack
topic write {ROOT}/+/+/product-ack
topic write {ROOT}/+/+/alarm/#

# every station (user name = station id): its own topics only
pattern write {ROOT}/+/%u/data
pattern write {ROOT_V2}/+/%u/data
pattern write {ROOT}/+/%u/gap
pattern write {ROOT}/+/%u/key
pattern readwrite {ROOT}/+/%u/status
pattern write {ROOT}/+/%u/product
pattern read {ROOT}/+/%u/ack
pattern read {ROOT}/+/%u/product-ack
"""

CONFIG = """\
# written by `obslink collector broker-config`; regenerate rather than edit
# started as root, Mosquitto runs as this account, which owns the files below
user {user}
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


def broker_user(requested: str | None) -> str:
    """The account the broker runs as: the one asked for, else ``mosquitto`` when root
    writes the configuration (Mosquitto's own default), else whoever writes it."""
    if requested:
        try:
            pwd.getpwnam(requested)
        except KeyError:
            raise ConfigError(f"--user {requested}: no such account on this machine; create "
                              "it, or name the account the broker runs as") from None
        return requested
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid()).pw_name
    try:
        pwd.getpwnam("mosquitto")
    except KeyError:
        raise ConfigError("started as root, Mosquitto drops to the account `mosquitto`, and "
                          "there is none here: install Mosquitto's package (it makes it) or "
                          "name the account with --user") from None
    return "mosquitto"


def unreachable_by(directory: Path, user: str) -> Path | None:
    """The first directory on the way to ``directory`` that ``user`` cannot enter, if any."""
    account = pwd.getpwnam(user)
    if account.pw_uid == 0:
        return None
    groups = {account.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    for folder in [*reversed(directory.resolve().parents), directory.resolve()]:
        mode = folder.stat()
        if mode.st_uid == account.pw_uid:
            allowed = mode.st_mode & stat.S_IXUSR
        elif mode.st_gid in groups:
            allowed = mode.st_mode & stat.S_IXGRP
        else:
            allowed = mode.st_mode & stat.S_IXOTH
        if not allowed:
            return folder
    return None


def write_broker_config(catalog_path: Path, directory: Path, tls_directory: Path,
                        port: int = 8883, address: str = "0.0.0.0",
                        user: str | None = None) -> dict:
    """Write mosquitto.conf, passwd, acl and the broker's certificate and key, owned by the
    account the broker runs as; the collector's password goes to collector.password (mode
    0600, owned by the catalog's owner: the collector's account) when its account is made."""
    certificate, key = tls_directory / "server.pem", tls_directory / "server.key"
    for path in (certificate, key):
        if not path.is_file():
            raise ConfigError(f"{path} does not exist; run `obslink collector tls init --dir "
                              f"{tls_directory} --host BROKER_HOST` or pass --tls-dir")
    user = broker_user(user)
    if not directory.exists():
        directory.mkdir(parents=True)
        directory.chmod(0o755)  # the collector's account reads collector.password in it
    blocked = unreachable_by(directory, user)
    if blocked is not None:
        raise ConfigError(f"--dir {directory}: the broker runs as {user}, which cannot enter "
                          f"{blocked} (mode {stat.filemode(blocked.stat().st_mode)}); choose a "
                          "directory it can reach, such as /etc/obslink/broker")
    password_file = directory / "collector.password"
    catalog = open_catalog(catalog_path)
    try:
        accounts = dict(catalog.broker_accounts())
        if COLLECTOR_ACCOUNT not in accounts or not password_file.exists():
            write_secret(password_file, catalog.collector_password())
            share_owner(password_file, catalog_path)  # the collector's account reads it
        accounts = catalog.broker_accounts()
        write_secret(directory / "passwd", "".join(f"{name}:{digest}\n"
                                                    for name, digest in accounts))
        (directory / "acl").write_text(ACL)
        shutil.copyfile(certificate, directory / "server.pem")
        write_secret(directory / "server.key", key.read_bytes())
        config = directory / "mosquitto.conf"
        config.write_text(CONFIG.format(user=user, directory=directory.resolve(), port=port,
                                        address=address,
                                        certificate=(directory / "server.pem").resolve(),
                                        key=(directory / "server.key").resolve()))
        _hand_over(directory, user, ("passwd", "acl", "server.pem", "server.key"))
        catalog.record_broker_config(directory)  # what the broker will know at its reload
    finally:
        catalog.close()
    return {"config": config, "collector_password": password_file,
            "accounts": len(accounts), "user": user}


def _hand_over(directory: Path, user: str, names: tuple[str, ...]) -> None:
    """Give the broker's account its files and the directory (its persistence file goes
    there); only root can, and only root needs to (otherwise the writer runs the broker)."""
    if os.geteuid() != 0:
        return
    account = pwd.getpwnam(user)
    for path in (directory, *(directory / name for name in names)):
        os.chown(path, account.pw_uid, account.pw_gid)
