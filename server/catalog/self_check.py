"""`obslink catalog verify`: the catalog re-checked offline against what was signed
(docs/provenance.md, "Verifying the catalog"). Every station signature against the stored
bytes and the key history; every observation row against its signed batch (time, field,
value, source flag) and the QC columns committed; every product's record and stored file
against its signed manifest; every log leaf against its batch or product; the log against
every signed tree head. Each problem names the row, batch, product or leaf."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable

from obslink import wire
from obslink.errors import WireError
from obslink.server.catalog import merkle
from obslink.server.catalog.identifiers import batch_id, observation_id
from obslink.server.catalog.interface import Catalog
from obslink.server.catalog.log_entries import leaf_hash, product_leaf_hash, qc_sha256
from obslink.server.catalog.provenance import (key_status_at, row_differences,
                                               signed_message_of, tree_head_valid, verifies)

CHUNK = 1000  # batches read at a time
# (SHA-256 hex, size) -> what is wrong with the product store's file, or None
ProductFiles = Callable[[str, int], "str | None"]


@dataclass
class CheckReport:
    batches: int = 0
    observations: int = 0
    products: int = 0
    leaves: int = 0
    tree_heads: int = 0
    unsigned_leaves: int = 0  # appended after the newest signed tree head
    # observations in months retired into archive files: their batches are checked, the
    # rows are not in the catalog to compare (docs/scaling.md, "Retention")
    retired_observations: int = 0
    problems: list[dict] = field(default_factory=list)

    def problem(self, kind: str, where: str, what: str) -> None:
        self.problems.append({"kind": kind, "where": where, "problem": what})

    def as_dict(self) -> dict:
        return {"batches": self.batches, "observations": self.observations,
                "products": self.products,
                "leaves": self.leaves, "tree_heads": self.tree_heads,
                "unsigned_leaves": self.unsigned_leaves,
                "retired_observations": self.retired_observations,
                "ok": not self.problems, "problems": self.problems}


def verify_catalog(catalog: Catalog, collector_key: bytes | None = None,
                   progress: Callable[[int], None] | None = None,
                   product_store: ProductFiles | None = None) -> CheckReport:
    """Re-check everything; ``collector_key`` (raw Ed25519 public key) is the key tree heads
    must be signed with (default: the key stored beside each head); ``product_store`` finds
    a product's file by its SHA-256 (None: products' files are not read)."""
    report = CheckReport()
    names = catalog.qc_check_names()
    retired = [(month["start_us"], month["end_us"]) for month in catalog.retired_months()]
    batches: set[int] = set()
    after = 0
    while True:
        records = catalog.batch_records(after, CHUNK)
        if not records:
            break
        for record in records:
            _check_batch(catalog, record, names, report, retired)
        batches.update(record["id"] for record in records)
        after = records[-1]["id"]
        report.batches += len(records)
        if progress:
            progress(report.batches)
    for row_id, owner in catalog.stray_rows():
        report.problem("observation", f"row {row_id}", f"belongs to batch row {owner}, "
                       "which does not hold it: a row added or moved after commit")
    products: set[int] = set()
    after = 0
    while records := catalog.product_records(after, CHUNK):
        for record in records:
            _check_product(catalog, record, product_store, report)
        products.update(record["id"] for record in records)
        after = records[-1]["id"]
        report.products += len(records)
    _check_log(catalog, batches, products, collector_key, report)
    return report


def _check_product(catalog: Catalog, record: dict, files: ProductFiles | None,
                   report: CheckReport) -> None:
    """The signed manifest against the key history and the record; the stored file against
    the manifest's SHA-256; the leaf against the manifest and the commit metadata."""
    where = record["identifier"]
    try:
        manifest = wire.decode_manifest(record["manifest"])
    except WireError as exc:
        report.problem("product", where, f"the stored manifest does not decode ({exc})")
        return
    if (manifest.station, manifest.epoch, manifest.product) != \
            (record["station"], record["epoch"], record["number"]):
        report.problem("product", where, "the signed manifest names another product than "
                       "its record")
    for name, signed in (("sha256", manifest.sha256.hex()), ("size", manifest.size),
                         ("name", manifest.name), ("format", manifest.format)):
        if record[name] != signed:
            report.problem("product", where, f"its {name} is {record[name]!r}; the station "
                           f"signed {signed!r}")
    _check_signed(catalog, record, wire.signed_message(record["topic"], record["manifest"]),
                  "product", "manifest", where, report)
    if files is not None:
        problem = files(manifest.sha256.hex(), manifest.size)
        if problem:
            report.problem("product", where, problem)
    if record["log_index"] is None:
        report.problem("log", where, "the product has no leaf in the transparency log")
    elif record["leaf_hash"] != product_leaf_hash(
            record["topic"], record["key_id"], record["signature"],
            hashlib.sha256(record["manifest"]).digest(), record["received_at"],
            record["committed_at"], record["committed_by"]):
        report.problem("log", where, f"leaf {record['log_index']} is not the hash of this "
                       "product's signed manifest and commit metadata")


def _check_batch(catalog: Catalog, record: dict, names: dict[int, str],
                 report: CheckReport, retired: list[tuple[int, int]] = ()) -> None:
    where = batch_id(record["station"], record["epoch"], record["seq"])
    body = record["body"]
    try:
        signed = wire.decode_batch_columns(body, record.get("context"))
    except WireError as exc:
        report.problem("batch", where, f"the stored body does not decode ({exc})")
        return
    if (signed.station, signed.epoch, signed.seq) != (record["station"], record["epoch"],
                                                      record["seq"]):
        named = batch_id(signed.station, signed.epoch, signed.seq)
        report.problem("batch", where, f"the signed body is batch {named}, not the one its "
                       "row names")
    body_sha = hashlib.sha256(body).digest()
    if record["signed_sha256"] != body_sha.hex():
        report.problem("batch", where, "signed_sha256 is not the SHA-256 of the stored body")
    _check_signature(catalog, record, body_sha, where, report)
    if record["readings"] != len(signed.times):
        report.problem("batch", where, f"says {record['readings']} readings; the signed body "
                       f"holds {len(signed.times)}")
    columns = _check_rows(catalog, record, signed, report, retired)
    if record["log_index"] is None:
        report.problem("log", where, "the batch has no leaf in the transparency log")
        return
    if columns is not None and record["qc_sha256"] != qc_sha256(record["qc_origin"], names,
                                                                *columns):
        report.problem("observation", where, "the QC columns (qc, qc_ran, qc_failed) of its "
                       "rows, or the QC check names, differ from those committed")
    bundle = record["bundle_digests"]
    leaf = leaf_hash(record["topic"], record["key_id"], record["signature"], body_sha,
                     None if bundle is None else hashlib.sha256(bundle).digest(),
                     record["received_at"], record["committed_at"], record["committed_by"],
                     record["qc_sha256"])
    if leaf != record["leaf_hash"]:
        report.problem("log", where, f"leaf {record['log_index']} is not the hash of this "
                       "batch's signed bytes and commit metadata")


def _check_signature(catalog: Catalog, record: dict, body_sha: bytes, where: str,
                     report: CheckReport) -> None:
    message, covered = signed_message_of(record, body_sha)
    _check_signed(catalog, record, message, "batch", "bytes", where, report,
                  None if covered else "its body's digest is not in its bundle's signed "
                  "digest list")


def _check_signed(catalog: Catalog, record: dict, message: bytes, kind: str, signed: str,
                  where: str, report: CheckReport, uncovered: str | None = None) -> None:
    """A stored signature over ``message`` (a batch's or bundle's bytes, a product's
    manifest) against the key history: a key of the record's station, valid over what is
    stored, active when the record arrived. ``uncovered``: a problem reported once the key
    is known (a bundled body missing from the signed digest list)."""
    key = catalog.key_record(record["key_id"])
    if key is None or key["station"] != record["station"]:
        report.problem(kind, where, f"signed by key {record['key_id']}, which is not a "
                       f"key of {record['station']} in the catalog")
        return
    if uncovered:
        report.problem(kind, where, uncovered)
    if not verifies(key["public_key"], record["signature"], message):
        report.problem(kind, where, f"the signature does not verify with key "
                       f"{record['key_id']} over the stored topic and {signed}")
    status = key_status_at(key, record["received_at"])
    if status != "active":
        report.problem(kind, where, f"key {record['key_id']} was {status} when the {kind} "
                       f"arrived ({record['received_at']})")


def _check_rows(catalog: Catalog, record: dict, signed, report: CheckReport,
                retired: list[tuple[int, int]] = ()
                ) -> tuple[list[int], list[int], list[int]] | None:
    """Compare each row with the signed reading; the stored QC columns, in order (None
    when rows are missing: that is the problem reported, unless the reading's month was
    retired into an archive file)."""
    count = len(signed.times)
    qc: list[int] = []
    ran: list[int] = []
    failed: list[int] = []
    if not count:
        return qc, ran, failed
    first = record["first_row"]
    rows = catalog.observation_rows(first, first + count - 1) if first is not None else []
    by_id = {row[0]: row for row in rows}
    complete = True
    for n in range(count):
        where = observation_id(record["station"], record["epoch"], record["seq"], n)
        row = by_id.get(first + n) if first is not None else None
        if row is None and any(start <= signed.times[n] < end for start, end in retired):
            report.retired_observations += 1
            complete = False  # its QC columns are in the archive, not here to compare
            continue
        report.observations += 1
        if row is None or row[1] != record["id"]:
            report.problem("observation", where, f"its row "
                           f"({'?' if first is None else first + n}) "
                           "is missing: deleted, or moved to another batch")
            complete = False
            continue
        qc.append(row[10])
        ran.append(row[11])
        failed.append(row[12])
        differences = row_differences(row, signed, n)
        if differences:
            report.problem("observation", where, f"row {row[0]}: " + "; ".join(differences))
    return (qc, ran, failed) if complete else None


def _check_log(catalog: Catalog, batches: set[int], products: set[int],
               collector_key: bytes | None, report: CheckReport) -> None:
    heads = sorted(catalog.all_tree_heads(), key=lambda head: head["size"])
    report.tree_heads = len(heads)
    for head in heads:
        if not tree_head_valid(head, collector_key):
            report.problem("tree-head", f"tree head {head['id']}", "its signature does not "
                           "verify" + (" with the collector key given" if collector_key
                                       else ""))
    frontier = merkle.Frontier()
    pending = iter(heads)
    head = next(pending, None)
    for index, owner, product, stored in catalog.log_leaf_rows():
        while head is not None and head["size"] == frontier.size:
            _check_head_root(head, frontier, report)
            head = next(pending, None)
        if index != frontier.size:
            report.problem("log", f"leaf {frontier.size}", f"missing: the next leaf stored is "
                           f"{index}")
        if product is not None and product not in products:
            report.problem("log", f"leaf {index}", f"its product (row {product}) is not in the "
                           "catalog: deleted after commit")
        elif product is None and owner not in batches:
            report.problem("log", f"leaf {index}", f"its batch (row {owner}) is not in the "
                           "catalog: deleted after commit")
        frontier.append(stored)
        report.leaves += 1
    report.unsigned_leaves = frontier.size - max((h["size"] for h in heads), default=0)
    while head is not None:
        if head["size"] == frontier.size:
            _check_head_root(head, frontier, report)
        else:
            report.problem("tree-head", f"tree head {head['id']}", f"signs a tree of "
                           f"{head['size']} leaves; the log holds {frontier.size}")
        head = next(pending, None)


def _check_head_root(head: dict, frontier: merkle.Frontier, report: CheckReport) -> None:
    if frontier.root() != head["root"]:
        report.problem("tree-head", f"tree head {head['id']}", f"the log's first "
                       f"{head['size']} leaves do not hash to the root it signs: leaves or "
                       "batches were changed after it was signed")
