"""The access layer's pure parts (docs/access.md): the audit log's hash chain finds any
edited, deleted or reordered row; outflow reports share a request's bytes among its
datasets by rows; roles, scopes, clearances and tokens; and the catalog's accounts on both
backends."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from obslink.errors import ConfigError
from obslink.server.access.audit_chain import (FIELDS, GENESIS, ChainProblem, check_chain,
                                               row_hash)
from obslink.server.access.outflow import outflow
from obslink.server.access.roles import ROLES, check_scopes, cleared_levels
from obslink.server.access.tokens import issue_token, secret_matches, split_token
from obslink.server.catalog import open_catalog
from obslink.server.catalog.errors import NoSuchRecordError

entries = st.fixed_dictionaries({
    "at_us": st.integers(0, 2**62), "account": st.one_of(st.none(), st.text(max_size=8)),
    "address": st.one_of(st.none(), st.text(max_size=8)), "action": st.text(max_size=12),
    "target": st.text(max_size=12), "status": st.one_of(st.none(), st.integers(100, 599)),
    "datasets": st.dictionaries(st.text(max_size=6), st.integers(0, 100), max_size=3).map(
        lambda found: json.dumps(found, sort_keys=True)),
    "rows": st.integers(0, 10**6), "bytes": st.integers(0, 10**9),
    "detail": st.text(max_size=12)})


def chained(found: list[dict]) -> list[dict]:
    """Rows as the catalog appends them: seq from 1, each hashed onto the one before."""
    rows, previous = [], GENESIS
    for seq, entry in enumerate(found, start=1):
        row = {**entry, "seq": seq, "prev_hash": previous}
        row["hash"] = previous = row_hash(previous, row)
        rows.append(row)
    return rows


def problems(rows: list[dict]) -> list[ChainProblem]:
    return check_chain(rows).problems


@settings(max_examples=300, deadline=None)
@given(st.lists(entries, min_size=1, max_size=6), st.data())
def test_the_chain_finds_any_edited_or_deleted_row(found, data):
    rows = chained(found)
    checked = check_chain(rows)
    assert (checked.problems, checked.rows, checked.head) == ([], len(rows), rows[-1]["hash"])
    victim = data.draw(st.integers(0, len(rows) - 1))
    field = data.draw(st.sampled_from([name for name in FIELDS if name != "seq"]))
    edited = [dict(row) for row in rows]
    old = edited[victim][field]
    edited[victim][field] = (old + 1) if isinstance(old, int) else f"{old}x" if isinstance(
        old, str) else 1
    assert [p.seq for p in problems(edited)] == [victim + 1]
    if len(rows) > 1:
        gone = data.draw(st.integers(0, len(rows) - 2))  # not the last: see --expect
        shown = [str(p) for p in problems(rows[:gone] + rows[gone + 1:])]
        assert shown and f"rows {gone + 1} to {gone + 1} are missing" in shown[0]


def test_an_outflow_report_shares_bytes_among_datasets_by_rows():
    rows = [{"account": "dora", "status": 200, "bytes": 1000,
             "datasets": json.dumps({"A": 30, "B": 10})},
            {"account": "dora", "status": 206, "bytes": 500, "datasets": json.dumps({"A": 1})},
            {"account": "dora", "status": 404, "bytes": 90, "datasets": json.dumps({"A": 1})},
            {"account": "ann", "status": 200, "bytes": 70, "datasets": "{}"}]
    assert outflow(rows) == [
        {"account": "dora", "dataset": "A", "requests": 2, "rows": 31, "bytes": 1250},
        {"account": "dora", "dataset": "B", "requests": 1, "rows": 10, "bytes": 250}]


def test_roles_scopes_and_clearances():
    assert cleared_levels("public") == ("public",)
    assert cleared_levels("restricted") == ("public", "internal", "restricted")
    assert check_scopes((), "operator") == ROLES["operator"]
    assert check_scopes(("catalog:read",), "operator") == ("catalog:read",)
    with pytest.raises(ConfigError, match="not granted to the role data-user"):
        check_scopes(("admin",), "data-user")
    with pytest.raises(ConfigError, match="not one of"):
        check_scopes(("everything",), "administrator")
    with pytest.raises(ConfigError, match="not one of public"):
        cleared_levels("secret")


def test_accounts_and_tokens_in_the_catalog(catalog_location):
    catalog = open_catalog(catalog_location)
    try:
        with pytest.raises(ConfigError, match="needs the real name"):
            catalog.create_account("ann", "data-user", "public")
        with pytest.raises(ConfigError, match="account name 'Ann!'"):
            catalog.create_account("Ann!", "data-user", "public", real_name="Ann")
        catalog.create_account("ann", "data-user", "internal", real_name="Ann Lee")
        with pytest.raises(ConfigError, match="exists already"):
            catalog.create_account("ann", "auditor", "public", "service")
        record, token = issue_token(catalog, "ann", (), 3600, "laptop")
        token_id, secret = split_token(token)
        holder = catalog.token_holder(token_id)
        assert (record["id"], holder["account"], holder["scopes"]) == (token_id, "ann",
                                                                      "catalog:read")
        assert secret_matches(secret, holder["secret_hash"])
        assert secret not in json.dumps(catalog.account("ann"))  # kept only as its hash
        assert not secret_matches("x" * 43, holder["secret_hash"])
        catalog.update_account("ann", status="revoked")
        assert catalog.token_holder(token_id)["revoked_at"] is not None
        with pytest.raises(ConfigError, match="revoked for good"):
            catalog.update_account("ann", status="active")
        with pytest.raises(ConfigError, match="gets no tokens"):
            issue_token(catalog, "ann", (), None)
        with pytest.raises(NoSuchRecordError, match="no account 'bob'"):
            catalog.account("bob")
        assert split_token("obl_short") is None
        # an audit row committed without waiting for the disk, then synced to it
        row = catalog.append_audit({"account": "ann", "action": "GET /v1/me", "status": 200})
        catalog.sync_audit()
        assert list(catalog.audit_rows())[-1]["hash"] == row["hash"]
    finally:
        catalog.close()
