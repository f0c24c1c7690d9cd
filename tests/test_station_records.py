"""An operator's station records: register, update, retire, tokens, broker accounts and the
enrolment log (the catalog API, and the commands an operator types)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from obslink.errors import ObslinkError
from obslink.keys import key_id, load_public_key, public_bytes, write_keypair
from obslink.server.catalog import EnrolmentError, Station, open_catalog


def obslink(*args, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "obslink", *map(str, args)],
                          capture_output=True, text=True)
    if check:
        assert done.returncode == 0, done.stderr
    return done


@pytest.fixture
def catalog(catalog_location):
    opened = open_catalog(catalog_location)
    yield opened
    opened.close()


def a_key(tmp_path, name="station"):
    write_keypair(tmp_path / f"{name}.key", tmp_path / f"{name}.pub")
    public = load_public_key(tmp_path / f"{name}.pub")
    return public_bytes(public), key_id(public)


def test_adding_an_existing_station_changes_nothing_and_says_what_to_run(tmp_path):
    db = tmp_path / "catalog.db"
    obslink("collector", "station", "add", "ST-1", "--enrol", "--db", db, "--name", "Beijing",
            "--lat", "39.8", "--lon", "116.5", "--interval", "60")
    again = obslink("collector", "station", "add", "ST-1", "--enrol", "--db", db, check=False)
    assert again.returncode == 2 and "registered already" in again.stderr
    assert "obslink collector station update ST-1" in again.stderr
    shown = json.loads(obslink("collector", "station", "show", "ST-1", "--db", db,
                               "--json").stdout)
    assert (shown["name"], shown["latitude"], shown["longitude"],
            shown["interval_seconds"]) == ("Beijing", 39.8, 116.5, 60)
    obslink("collector", "station", "update", "ST-1", "--db", db, "--interval", "300")
    shown = json.loads(obslink("collector", "station", "show", "ST-1", "--db", db,
                               "--json").stdout)
    assert (shown["name"], shown["latitude"], shown["interval_seconds"]) == (
        "Beijing", 39.8, 300)  # only what was given changed
    listed = obslink("collector", "station", "list", "--db", db).stdout
    assert listed.startswith("ST-1") and "every 300 s" in listed


def test_one_live_token_per_station(catalog, tmp_path):
    catalog.register(Station("ST-2", "net"))
    first, _ = catalog.issue_token("ST-2", 3600)
    second, _ = catalog.issue_token("ST-2", 3600)
    assert [t["status"] for t in catalog.tokens("ST-2")] == ["live", "revoked"]
    raw, kid = a_key(tmp_path)
    with pytest.raises(EnrolmentError, match="withdrawn") as refused:
        catalog.enrol(first, raw, kid, "10.0.0.5")
    assert refused.value.reason == "revoked"
    assert catalog.revoke_tokens("ST-2") == 1
    with pytest.raises(EnrolmentError, match="withdrawn"):
        catalog.enrol(second, raw, kid)
    assert {t["status"] for t in catalog.tokens("ST-2")} == {"revoked"}


def test_a_revoked_key_is_never_enrolled_again_and_the_token_stays_good(catalog, tmp_path):
    catalog.register(Station("ST-3", "net"))
    raw, kid = a_key(tmp_path)
    token, _ = catalog.issue_token("ST-3", 3600)
    assert catalog.enrol(token, raw, kid, "10.0.0.7").id == "ST-3"
    catalog.revoke_key(kid)
    token, _ = catalog.issue_token("ST-3", 3600)
    with pytest.raises(EnrolmentError, match=f"key {kid} was revoked at") as refused:
        catalog.enrol(token, raw, kid, "10.0.0.7")
    assert refused.value.reason == "key-revoked"
    assert "make a new key" in str(refused.value).lower()
    assert catalog.tokens("ST-3")[0]["status"] == "live"  # not used up by the refusal
    new_raw, new_kid = a_key(tmp_path, "new")
    assert catalog.enrol(token, new_raw, new_kid).id == "ST-3"
    attempts = catalog.enrolment_attempts("ST-3")
    assert [(a["outcome"], a["reason"], a["key_id"]) for a in attempts] == [
        ("granted", None, new_kid), ("refused", "key-revoked", kid), ("granted", None, kid)]
    assert attempts[1]["client"] == "10.0.0.7"
    with pytest.raises(ObslinkError, match="never becomes valid again"):
        catalog.update("ST-3", raw, kid)  # nor by hand


def test_an_invalid_token_is_logged_without_a_station(catalog, tmp_path):
    raw, kid = a_key(tmp_path)
    with pytest.raises(EnrolmentError):
        catalog.enrol("not-a-token", raw, kid, "192.0.2.1")
    (attempt,) = catalog.enrolment_attempts()
    assert (attempt["station"], attempt["outcome"], attempt["reason"], attempt["client"]) == (
        None, "refused", "invalid", "192.0.2.1")


def test_retiring_keeps_data_and_identity_and_stops_the_station(catalog, tmp_path):
    raw, kid = a_key(tmp_path)
    catalog.register(Station("ST-4", "net", "Old mast"), raw, kid)
    catalog.issue_token("ST-4", 3600)
    catalog.retire("ST-4")
    assert catalog.station_keys("ST-4")[kid][1] == "revoked"
    assert [t["status"] for t in catalog.tokens("ST-4")] == ["revoked"]
    assert "ST-4" not in dict(catalog.broker_accounts())
    assert catalog.stations() == [] and catalog.stations(include_retired=True)[0]["name"] == "Old mast"
    with pytest.raises(ObslinkError, match="was retired"):
        catalog.register(Station("ST-4", "net"))
    with pytest.raises(ObslinkError, match="was retired"):
        catalog.issue_token("ST-4", 3600)


def test_enrolment_hands_out_the_password_the_broker_knows(catalog, tmp_path):
    """The account exists from registration; enrolling again gives the same password; only
    `station credentials` makes a new one, and the answer says when the broker must reload."""
    catalog.register(Station("ST-5", "net"))
    before = catalog.broker_account("ST-5")
    assert not before.broker_knows_it and "broker-config" in before.note()
    hashes = dict(catalog.broker_accounts())
    catalog.record_broker_config(tmp_path / "broker")  # what `broker-config` does
    raw, kid = a_key(tmp_path)
    catalog.enrol(catalog.issue_token("ST-5", 3600)[0], raw, kid)
    after = catalog.broker_account("ST-5")
    assert after.password == before.password and after.broker_knows_it and after.note() == ""
    assert dict(catalog.broker_accounts()) == hashes  # enrolment changed nothing
    rotated = catalog.new_broker_password("ST-5")
    assert rotated.password != before.password
    assert not catalog.broker_account("ST-5").broker_knows_it
    other = open_catalog(catalog.location)  # the HTTP API's connection
    assert other.broker_account("ST-5").password == rotated.password
    other.close()
