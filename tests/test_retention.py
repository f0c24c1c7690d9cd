"""`obslink catalog retire`: old months of a PostgreSQL catalog's observations go into
archive files that hold every row; the batches, the log and provenance stay, `catalog
verify` still passes, row numbers are never given out again, and a month that late data
made again is retired into a file of its own. A SQLite catalog is refused with advice."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import subprocess
import sys

import pytest

from obslink import wire
from obslink.keys import load_private_key
from obslink.readings import Reading
from obslink.server.catalog import open_catalog
from obslink.server.catalog.provenance import resolve
from obslink.server.catalog.self_check import verify_catalog
from tests.signed_catalog import batch, make_signed_catalog, signed
from tests.test_catalog_copy import copy

MARCH_2025 = 1_740_787_200_000_000  # 2025-03-01T00:00:00Z
MINUTE = 60_000_000


def old_batch(seq: int) -> wire.Batch:
    """A backlog batch from March 2025: two readings."""
    t = MARCH_2025 + seq * MINUTE
    return wire.Batch("S1", "e1", seq, t, [
        Reading(t, "air_temperature", 5.0 + seq, "degC", "T", None, 0, None, 1, 0),
        Reading(t, "air_pressure", 1000.0, "hPa", "P", None, 0, None, 1, 0)], "toa5", "1.0")


def retire(location, before: str, archive) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "obslink", "catalog", "retire", "--db",
                           str(location), "--before", before, "--archive", str(archive),
                           "--json"], capture_output=True, text=True, timeout=120)


def verified(location):
    """`catalog verify`'s report on the catalog at ``location``."""
    catalog = open_catalog(location)
    try:
        return verify_catalog(catalog)
    finally:
        catalog.close()


def archived_rows(path) -> list[dict]:
    with gzip.open(path, "rt", newline="") as text:
        return list(csv.DictReader(text))


def test_old_months_retire_into_archives_and_the_catalog_still_verifies(tmp_path, postgres):
    location = postgres.schema_url("retire")
    catalog, collector = make_signed_catalog(tmp_path, location)
    station = load_private_key(tmp_path / "station.key")
    # the backlog from March 2025 committed last: it holds the highest row numbers
    assert catalog.commit([signed(old_batch(seq), station) for seq in (101, 102, 103)]) == \
        [True] * 3
    catalog.sign_tree_head(collector)
    before = catalog.stats()["observations"]
    catalog.close()

    done = retire(location, "2026-01", tmp_path / "archive")

    assert done.returncode == 0, done.stderr
    (month,) = json.loads(done.stdout)
    assert (month["month"], month["rows"]) == ("2025-03", 6)
    assert "1/1 2025-03: 6 observations" in done.stderr
    archive = tmp_path / "archive" / "observation_values_y2025m03.csv.gz"
    assert month["archive"] == str(archive.resolve())
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == month["sha256"]
    rows = archived_rows(archive)
    assert sorted(float(row["value"]) for row in rows) == [106, 107, 108, 1000, 1000, 1000]
    assert max(int(row["id"]) for row in rows) == month["last_row"]

    catalog = open_catalog(location)
    try:
        assert catalog.stats()["observations"] == before - 6
        report = verify_catalog(catalog)
        assert report.problems == [] and report.retired_observations == 6
        assert report.observations == before - 6
        # the batch and its provenance stay: what was signed is still there to show
        assert resolve(catalog, "obslink:S1/e1/102")["batch"]["readings"] == 2
        assert [m["month"] for m in catalog.retired_months()] == ["2025-03"]
        # row numbers go on above the retired ones
        assert catalog.commit([signed(batch(7), station)]) == [True]
        (first_row,) = catalog.conn.execute(
            "SELECT first_row FROM batches WHERE seq = 7").fetchone()
        assert first_row == month["last_row"] + 1
        # late data for the retired month makes its partition again; retired again, into a
        # file of its own
        assert catalog.commit([signed(old_batch(104), station)]) == [True]
    finally:
        catalog.close()
    again = retire(location, "2026-01", tmp_path / "archive")
    assert again.returncode == 0, again.stderr
    (second,) = json.loads(again.stdout)
    assert second["rows"] == 2 and second["archive"].endswith("y2025m03-2.csv.gz")
    assert len(archived_rows(archive)) == 6  # the first file untouched
    report = verified(location)
    assert report.problems == [] and report.retired_observations == 8

    nothing = retire(location, "2026-01", tmp_path / "archive")
    assert nothing.returncode == 0 and json.loads(nothing.stdout) == []
    assert "nothing retired" in nothing.stderr

    # a copy takes the record of what was retired along; a SQLite target cannot hold it
    copied = postgres.schema_url("retire_copy")
    assert copy(location, copied).returncode == 0
    report = verified(copied)
    assert report.problems == [] and report.retired_observations == 8
    refused = copy(location, tmp_path / "copy.db")
    assert refused.returncode != 0 and "copy into PostgreSQL" in refused.stderr


def test_retiring_is_refused_on_sqlite_and_for_a_malformed_month(tmp_path):
    catalog, _ = make_signed_catalog(tmp_path)
    catalog.close()
    refused = retire(tmp_path / "catalog.db", "2026-01", tmp_path / "archive")
    assert refused.returncode != 0
    assert "cannot retire months" in refused.stderr and "catalog copy" in refused.stderr
    malformed = retire(tmp_path / "catalog.db", "2026-13", tmp_path / "archive")
    assert malformed.returncode != 0 and "YYYY-MM" in malformed.stderr


def test_a_writer_that_listed_a_retired_month_fails_once_then_makes_it_again(tmp_path,
                                                                            postgres):
    """A collector running while a month is retired still lists its partition: the group
    with late data for it fails (nothing stored, so nothing acknowledged), and the next
    attempt (the collector stores the group's batches one by one at once) makes the
    partition again."""
    location = postgres.schema_url("retire_live")
    catalog, _ = make_signed_catalog(tmp_path, location)
    station = load_private_key(tmp_path / "station.key")
    assert catalog.commit([signed(old_batch(101), station)]) == [True]
    assert retire(location, "2026-01", tmp_path / "archive").returncode == 0
    try:
        with pytest.raises(Exception, match="no partition"):
            catalog.commit([signed(old_batch(102), station)])
        assert catalog.commit([signed(old_batch(102), station)]) == [True]
        assert verify_catalog(catalog).problems == []
    finally:
        catalog.close()
