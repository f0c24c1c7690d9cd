"""`obslink catalog copy`: a SQLite catalog moved into PostgreSQL keeps every row, its log,
its identifiers' provenance, its stations' broker passwords, its accounts and its audit
log, and goes on taking batches; a target that holds stations is refused."""

from __future__ import annotations

import json
import subprocess
import sys

from obslink.keys import load_private_key
from obslink.readings import now_us
from obslink.server.access.tokens import issue_token, secret_matches, split_token
from obslink.server.catalog import Refusal, Station, open_catalog
from obslink.server.catalog.copy import NOT_COPIED, TABLES
from obslink.server.catalog.provenance import resolve
from obslink.server.catalog.self_check import verify_catalog
from tests.signed_catalog import batch, make_signed_catalog, signed


def copy(source, target) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "obslink", "catalog", "copy", str(source),
                           str(target), "--json"], capture_output=True, text=True, timeout=300)


def test_a_sqlite_catalog_copied_into_postgresql_is_the_same_catalog(tmp_path, postgres):
    source, collector = make_signed_catalog(tmp_path)
    source.register(Station("S2", "net", "Station two"))  # with a broker account
    source.set_schedule("S1", "air_temperature", 60)
    source.record_refusals([Refusal("obslink/v1/net/S1/data", "malformed", "not msgpack",
                                    b"junk", now_us())])
    password = source.broker_account("S2").password
    source.create_account("ann", "data-user", "internal", real_name="Ann Lee")
    token = issue_token(source, "ann", (), None)[1]
    for number in range(3):
        source.append_audit({"account": "ann", "action": "GET /v1/stations", "status": 200,
                             "detail": {"n": number}})
    source.close()
    target_url = postgres.schema_url("copy_target")

    done = copy(tmp_path / "catalog.db", target_url)

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["rows"]["observation_values"] == 18 and report["tree_size"] == 6
    assert report["rows"]["refusals"] == 1 and report["rows"]["schedules"] == 1
    assert "observation_values: 18 rows" in done.stderr
    source, target = open_catalog(tmp_path / "catalog.db"), open_catalog(target_url)
    try:
        assert target.stats() == source.stats()
        assert verify_catalog(target).problems == []
        for identifier in ("obslink:S1/e1/2/1", "obslink:S1/e1/5"):
            assert resolve(target, identifier) == resolve(source, identifier)
        assert target.broker_account("S2").password == password
        assert target.schedules() == source.schedules()
        # accounts, tokens and the audit log go along; its chain and head are the same
        assert target.account("ann") == source.account("ann")
        holder = target.token_holder(split_token(token)[0])
        assert secret_matches(split_token(token)[1], holder["secret_hash"])
        assert list(target.audit_rows()) == list(source.audit_rows())
        # the copy goes on: new rows, new ids, new leaves
        station = load_private_key(tmp_path / "station.key")
        assert target.commit([signed(batch(7), station)]) == [True]
        target.add_station(Station("S3", "net"), None, None)
        head = target.sign_tree_head(collector)
        assert head["size"] == 7 and verify_catalog(target).problems == []
        assert resolve(target, "obslink:S1/e1/7/0")["observation"]["matches_signed"]
    finally:
        source.close()
        target.close()

    # the operators' and data users' commands read it as they read a SQLite catalog
    for command in (("catalog", "stats"), ("catalog", "gaps"), ("catalog", "qc", "--station",
                    "S1"), ("catalog", "verify", "--collector-pub",
                            str(tmp_path / "collector.pub")),
                    ("catalog", "provenance", "obslink:S1/e1/2/1"), ("catalog", "tree-head"),
                    ("catalog", "datasets", "list"), ("collector", "station", "list"),
                    ("collector", "station", "show", "S2"), ("collector", "keys", "list"),
                    ("collector", "refusals"), ("collector", "token", "list"),
                    ("collector", "enrolments"),
                    ("monitor", "network"), ("monitor", "station", "S1"),
                    ("account", "list"), ("audit", "verify")):
        done = subprocess.run([sys.executable, "-m", "obslink", *command, "--db", target_url],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (command, done.stderr)

    again = copy(tmp_path / "catalog.db", target_url)
    assert again.returncode != 0 and "holds stations already" in again.stderr


def test_every_table_is_copied_or_said_why_not(tmp_path):
    catalog = open_catalog(tmp_path / "catalog.db")
    try:
        tables = {name for (name,) in catalog.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        catalog.close()
    assert tables - set(NOT_COPIED) == set(TABLES)
