"""Identifiers resolved to provenance, the signed transparency log, `catalog verify` finding
each edit of the database, and the third-party recipe of docs/provenance.md run as an
independent script. The last test runs a real collector and agent over Mosquitto."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from obslink.keys import key_id, load_private_key, write_keypair
from obslink.server.catalog import merkle, open_catalog
from obslink.server.catalog.errors import NoSuchRecordError
from obslink.server.catalog.prov_json import to_prov_json
from obslink.server.catalog.provenance import resolve
from obslink.server.catalog.provenance_bundle import export_bundle
from obslink.server.catalog.self_check import verify_catalog
from tests.conftest import wait_until
from tests.signed_catalog import batch, signed

ROOT = Path(__file__).resolve().parent.parent


def _problems(catalog) -> list[tuple[str, str]]:
    return [(p["where"], p["problem"]) for p in verify_catalog(catalog).problems]


def test_an_observation_resolves_to_its_whole_chain(signed_catalog):
    catalog, _, collector = signed_catalog
    chain = resolve(catalog, "obslink:S1/e1/2/1")
    observation = chain["observation"]
    assert observation["value"] is None and observation["source_flag"] == "NAN"
    assert observation["element"] == "relative_humidity" and observation["matches_signed"]
    assert observation["qc_ran"] == ["range"]
    assert chain["dataset"] == "obslink:S1/surface"
    assert chain["signature"]["valid"] and chain["signature"]["signed"] == "batch"
    assert chain["signature"]["key_status_when_received"] == "active"
    assert chain["source"] == {"name": "logger", "stream": None, "byte_start": 200,
                               "byte_end": 299, "sha256": "00" * 32, "adapter": "toa5",
                               "adapter_version": "1.0"}
    assert chain["clock"] == {"synced": True, "offset_ms": 1.5}
    assert chain["batch"]["committed_by"] == key_id(collector.public_key())
    assert chain["log"]["verified"] and chain["log"]["tree_head"]["size"] == 6
    bundled = resolve(catalog, "obslink:S1/e1/5")
    assert bundled["signature"]["signed"] == "bundle" and bundled["signature"]["valid"]
    assert len(bundled["signature"]["bundle_digests"]) == 3 and bundled["log"]["verified"]
    for unknown in ("obslink:S1/e1/99", "obslink:S1/e1/2/3", "obslink:S1/surface"):
        with pytest.raises(NoSuchRecordError):
            resolve(catalog, unknown)


def test_prov_json_reads_back_with_the_w3c_prov_library(signed_catalog):
    from prov.model import ProvDocument  # the reference Python implementation of PROV

    catalog, _, _ = signed_catalog
    document = ProvDocument.deserialize(
        content=json.dumps(to_prov_json(resolve(catalog, "obslink:S1/e1/5/0"))), format="json")
    text = document.get_provn()
    assert "wasDerivedFrom(obslink:S1/e1/5/0, obslink:S1/e1/5" in text
    assert "ol:Observation" in text and "ol:SignedTreeHead" in text


def test_a_genuine_catalog_verifies_and_each_edit_is_found_and_named(signed_catalog):
    catalog, _, _ = signed_catalog
    report = verify_catalog(catalog)
    assert report.problems == [] and (report.batches, report.observations) == (6, 18)
    assert (report.leaves, report.tree_heads, report.unsigned_leaves) == (6, 1, 0)
    first = {seq: catalog.batch_record("S1", "e1", seq)["first_row"] for seq in (1, 3, 5)}
    db = catalog.conn  # autocommit: each edit stands alone, as another program's would
    db.execute("UPDATE observation_values SET value = 99 WHERE id = ?", (first[1],))
    db.execute("UPDATE observation_values SET observed_us = observed_us + 1 WHERE id = ?",
               (first[3] + 2,))
    db.execute("DELETE FROM observation_values WHERE id = ?", (first[5] + 1,))
    problems = _problems(catalog)
    assert problems == [
        ("obslink:S1/e1/1/0", f"row {first[1]}: value 99.0 (signed 20.1)"),
        ("obslink:S1/e1/3/2", f"row {first[3] + 2}: time 2026-11-18T11:09:40.000001Z (signed "
                              "2026-11-18T11:09:40.000000Z)"),
        ("obslink:S1/e1/5/1", f"its row ({first[5] + 1}) is missing: deleted, or moved to "
                              "another batch")], problems


def test_edits_of_qc_leaves_batches_and_tree_heads_are_found(signed_catalog):
    catalog, _, _ = signed_catalog
    db = catalog.conn
    db.execute("UPDATE observation_values SET qc = 4 WHERE batch_id = 1")
    db.execute("UPDATE batches SET committed_at = '2030-01-01T00:00:00.000000Z' "
               "WHERE seq = 3")
    problems = _problems(catalog)
    assert ("obslink:S1/e1/1", "the QC columns (qc, qc_ran, qc_failed) of its rows, or the QC "
            "check names, differ from those committed") in problems
    assert ("obslink:S1/e1/3", "leaf 2 is not the hash of this batch's signed bytes and "
            "commit metadata") in problems
    # whoever rewrites the leaf to match no longer matches the signed tree head
    db.execute("UPDATE log_leaves SET hash = ? WHERE idx = 2", (bytes(32),))
    db.execute("UPDATE batches SET body = ? WHERE seq = 4", (b"\x00",))
    problems = _problems(catalog)
    assert ("tree head 1", "the log's first 6 leaves do not hash to the root it signs: leaves "
            "or batches were changed after it was signed") in problems
    assert any(where == "obslink:S1/e1/4" and "does not decode" in what
               for where, what in problems)


def test_tree_heads_are_consistent_and_a_catalog_without_a_log_gets_one(signed_catalog):
    catalog, tmp_path, collector = signed_catalog
    station = load_private_key(tmp_path / "station.key")
    old = catalog.tree_heads()[0]
    catalog.commit([signed(batch(7), station), signed(batch(8), station)])
    new = catalog.sign_tree_head(collector)
    proof = catalog.consistency(old["size"], new["size"])[2]
    assert merkle.verify_consistency(old["size"], new["size"], old["root"], new["root"], proof)
    leaves = catalog.leaf_hashes()
    # a catalog from before the log: its batches get the same leaves when it is next opened
    catalog.conn.execute("DELETE FROM log_leaves")
    catalog.conn.execute("UPDATE batches SET first_row = NULL")
    catalog.close()
    reopened = open_catalog(catalog.location)
    try:
        assert reopened.leaf_hashes() != leaves  # committed_by was set; now it is unknown
        assert [row[1] for row in reopened.log_leaf_rows()] == list(range(1, 9))
        problems = _problems(reopened)
        # the rows and signatures check out; the heads signed before no longer match
        assert problems == [(f"tree head {n}", f"the log's first {size} leaves do not hash "
                             "to the root it signs: leaves or batches were changed after it "
                             "was signed") for n, size in ((1, 6), (2, 8))], problems
    finally:
        reopened.close()


def _recipe(tmp_path: Path) -> Path:
    text = (ROOT / "docs" / "provenance.md").read_text()
    script = tmp_path / "check.py"
    script.write_text(re.search(r"```python\n(.*?)```", text, re.S).group(1))
    return script


def _run_recipe(script: Path, bundle: dict, tmp_path: Path, station: str = "station.pub",
                collector: str = "collector.pub") -> subprocess.CompletedProcess:
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    return subprocess.run([sys.executable, "-I", str(script), str(path),
                           str(tmp_path / station), str(tmp_path / collector)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)


@pytest.mark.parametrize("identifier", ["obslink:S1/e1/2/1", "obslink:S1/e1/5/2",
                                        "obslink:S1/e1/3"])
def test_the_docs_recipe_verifies_a_genuine_bundle_and_rejects_tampered_ones(
        signed_catalog, identifier):
    catalog, tmp_path, _ = signed_catalog
    script = _recipe(tmp_path)
    bundle = export_bundle(catalog, identifier)
    done = _run_recipe(script, bundle, tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == f"verified: {identifier}", done.stderr
    write_keypair(tmp_path / "other.key", tmp_path / "other.pub")
    assert _run_recipe(script, bundle, tmp_path, station="other.pub").returncode != 0
    assert _run_recipe(script, bundle, tmp_path, collector="other.pub").returncode != 0
    tampered = json.loads(json.dumps(bundle))
    tampered["batch"]["committed_at"] = "2030-01-01T00:00:00.000000Z"
    assert "not in the signed log" in _run_recipe(script, tampered, tmp_path).stderr
    if bundle["observation"] is not None:
        tampered = json.loads(json.dumps(bundle))
        tampered["observation"]["value"] = 1.0
        assert _run_recipe(script, tampered, tmp_path).returncode != 0
        tampered = json.loads(json.dumps(bundle))
        tampered["observation"]["observed_at"] = "2026-11-19T08:00:00.000000Z"
        assert _run_recipe(script, tampered, tmp_path).returncode != 0


def test_a_running_collector_signs_tree_heads_and_the_cli_proves_a_reading(deployment):
    station = deployment.add_station("0-20000-0-54511")
    deployment.start_collector(options=("--tree-head-interval", "1s"))
    deployment.start_agent(station)
    for _ in range(3):
        station.logger.write_next()
    wait_until(lambda: deployment.catalog.count("batches") >= 1, timeout=30,
               message="a committed batch")
    wait_until(lambda: deployment.catalog.query(
        "SELECT count(*) FROM tree_heads WHERE size >= (SELECT count(*) FROM batches)")[0][0],
        timeout=30, message="a tree head signed over every batch")
    deployment.stop_all()
    cli = [sys.executable, "-m", "obslink", "catalog"]
    db = ("--db", str(deployment.catalog_path))
    done = subprocess.run([*cli, "verify", *db, "--collector-pub",
                           str(deployment.base / "collector.pub")], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and "the catalog matches what was signed" in done.stdout, \
        done.stdout + done.stderr
    epoch, seq = deployment.catalog.query("SELECT epoch, seq FROM batches LIMIT 1")[0]
    identifier = f"obslink:0-20000-0-54511/{epoch}/{seq}/0"
    chain = json.loads(subprocess.run([*cli, "provenance", identifier, *db, "--json"],
                                      capture_output=True, text=True, check=True,
                                      timeout=60).stdout)
    collector_key = load_private_key(deployment.base / "collector.key")
    assert chain["batch"]["committed_by"] == key_id(collector_key.public_key())
    assert chain["log"]["verified"] and chain["observation"]["matches_signed"]
    out = deployment.base / "bundle.json"
    subprocess.run([*cli, "export-provenance", identifier, *db, "--out", str(out)],
                   check=True, capture_output=True, timeout=60)
    (deployment.base / "station.pub").write_bytes(station.public_key.read_bytes())
    done = _run_recipe(_recipe(deployment.base), json.loads(out.read_text()), deployment.base)
    assert done.returncode == 0, done.stderr
