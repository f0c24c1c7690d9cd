"""`obslink catalog export-provenance`: one batch or observation with everything a third
party needs to check it with only the station's and the collector's public keys: the signed
bytes, the QC columns committed, the log leaf's inputs, the inclusion proof and the signed
tree head. docs/provenance.md holds the recipe that checks it (msgpack and cryptography
only)."""

from __future__ import annotations

import base64

from obslink.server.catalog.errors import NoSuchRecordError
from obslink.server.catalog.interface import Catalog
from obslink.server.catalog.log_entries import qc_columns_bytes
from obslink.server.catalog.provenance import batch_rows, chain_of, find_record

BUNDLE_FORMAT = "obslink-provenance-bundle-v1"


def export_bundle(catalog: Catalog, text: str, signing_key=None) -> dict:
    ident, record = find_record(catalog, text)
    if ident.kind == "product":
        raise NoSuchRecordError(f"{text} is a product: export-provenance writes bundles of "
                                "batches and observations; `obslink catalog provenance "
                                f"{text} --json` gives the product's chain (its signed "
                                "manifest and inclusion proof), /v1/products/ID/data its bytes")
    chain = chain_of(catalog, ident, record, signing_key)
    log = chain["log"]
    if log.get("tree_head") is None:
        raise NoSuchRecordError(f"{text}: {log.get('note', 'not in the log')}")
    rows = batch_rows(catalog, record)
    qc_columns = qc_columns_bytes(record["qc_origin"], catalog.qc_check_names(),
                                  [row[10] for row in rows], [row[11] for row in rows],
                                  [row[12] for row in rows])
    head = log["tree_head"]
    return {
        "format": BUNDLE_FORMAT,
        "id": text,
        "observation": None if ident.index is None else {
            "index": ident.index, **{key: chain["observation"][key] for key in (
                "observed_at", "element", "unit", "source_field", "value", "source_flag",
                "qc", "qc_ran", "qc_flagged")}},
        "batch": {"station": record["station"], "epoch": record["epoch"],
                  "seq": record["seq"], "topic": record["topic"], "key_id": record["key_id"],
                  "signature": record["signature"].hex(),
                  "body": base64.b64encode(record["body"]).decode(),
                  "bundle_digests": None if record["bundle_digests"] is None
                  else record["bundle_digests"].hex(),
                  # a protocol v2 body's context (docs/protocol.md), signed by its digest
                  "context": None if record.get("context") is None
                  else base64.b64encode(record["context"]).decode(),
                  "received_at": record["received_at"],
                  "committed_at": record["committed_at"],
                  "committed_by": record["committed_by"],
                  "qc_columns": base64.b64encode(qc_columns).decode()},
        "log": {"index": log["index"], "inclusion_proof": log["inclusion_proof"]},
        "tree_head": {"size": head["size"], "root": head["root"],
                      "signed_at_us": head["signed_at_us"], "key_id": head["key_id"],
                      "signature": head["signature"]},
    }
