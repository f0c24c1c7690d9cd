"""An identifier resolved to its provenance chain (docs/provenance.md): the station and the
key that signed the batch, the exact signed bytes, the raw source, the adapter, QC, the
clock, the times, the collector that committed it, and the batch's place in the signed
transparency log with its inclusion proof. As obslink's JSON, and as W3C PROV-JSON."""

from __future__ import annotations

import base64
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from obslink import wire
from obslink.readings import format_utc
from obslink.server.catalog import merkle
from obslink.server.catalog.errors import NoSuchRecordError, no_product
from obslink.server.catalog.identifiers import (RADAR, SURFACE, Identifier, batch_id,
                                                dataset_id, parse_identifier)
from obslink.server.catalog.log_entries import tree_head_message
from obslink.server.catalog.interface import Catalog


def resolve(catalog: Catalog, text: str, signing_key=None) -> dict:
    """The provenance chain of a batch or observation identifier. Its log proof is against
    the newest signed tree head that holds the batch; with ``signing_key`` (the
    collector's) a head is signed now when none does yet."""
    return chain_of(catalog, *find_record(catalog, text), signing_key)


def find_record(catalog: Catalog, text: str) -> tuple[Identifier, dict]:
    """The identifier and its stored batch (an observation's too)."""
    ident = parse_identifier(text)
    if ident.kind == "product":
        return ident, catalog.product(text)
    if ident.kind == "dataset":
        raise NoSuchRecordError(f"{text} names a dataset; provenance is kept per batch "
                                f"(obslink:STATION/EPOCH/SEQ) and observation "
                                f"(obslink:STATION/EPOCH/SEQ/N)")
    record = catalog.batch_record(ident.station, ident.epoch, ident.seq)
    if record is None:
        raise unknown_record(ident, text)
    return ident, record


def unknown_record(ident: Identifier, text: str) -> NoSuchRecordError:
    """What a caller is told of a batch, observation or product the catalog does not
    hold: also what an account not cleared for its dataset is told (docs/access.md)."""
    if ident.kind == "product":
        return no_product(text)
    return NoSuchRecordError(f"no batch {batch_id(ident.station, ident.epoch, ident.seq)} in "
                             "the catalog (`obslink catalog stats` shows what it holds)")


def dataset_of(ident: Identifier) -> str:
    """The dataset a record identifier's record belongs to."""
    return dataset_id(ident.station, RADAR if ident.kind == "product" else SURFACE)


def chain_of(catalog: Catalog, ident: Identifier, record: dict, signing_key=None) -> dict:
    if ident.kind == "product":
        return _product_chain(catalog, ident, record, signing_key)
    signed = wire.decode_batch_columns(record["body"], record.get("context"))
    chain = {"id": str(ident), "kind": ident.kind,
             "dataset": dataset_id(ident.station),
             "batch": _batch(record, len(signed.times)),
             "station": _station(catalog, ident.station),
             "signature": _signature(catalog, record),
             "source": {"name": record["source_name"], "stream": record["source_stream"],
                        "byte_start": record["source_start"], "byte_end": record["source_end"],
                        "sha256": record["raw_sha256"], "adapter": record["adapter"],
                        "adapter_version": record["adapter_version"]},
             "clock": {"synced": None if record["clock_synced"] is None
                       else bool(record["clock_synced"]),
                       "offset_ms": record["clock_offset_ms"]},
             "qc": _batch_qc(catalog, record),
             "log": _log(catalog, record, signing_key)}
    if ident.kind == "observation":
        chain["observation"] = _observation(catalog, ident, record, signed)
    return chain


def _product_chain(catalog: Catalog, ident: Identifier, record: dict,
                   signing_key=None) -> dict:
    """A product's chain, in the shape of a batch's (the signed manifest in the batch's
    place, the product file as its source) so that PROV-JSON and the export read it alike."""
    manifest = wire.decode_manifest(record["manifest"])
    message = wire.signed_message(record["topic"], record["manifest"])
    return {
        "id": str(ident), "kind": "product", "dataset": dataset_id(ident.station, RADAR),
        "batch": {"id": record["identifier"], "station": record["station"],
                  "epoch": record["epoch"], "seq": record["number"], "readings": 0,
                  "created_at": format_utc(manifest.created, fixed=True),
                  "received_at": record["received_at"],
                  "committed_at": record["committed_at"],
                  "committed_by": record["committed_by"]},
        "product": {"name": record["name"], "format": record["format"],
                    "format_version": record["format_version"], "size": record["size"],
                    "sha256": record["sha256"], "chunk_bytes": manifest.chunk_bytes,
                    "chunk_sha256": [digest.hex() for digest in manifest.chunk_sha256],
                    "metadata": record["metadata"]},
        "station": _station(catalog, ident.station),
        "signature": _signature_of(catalog, record, record["manifest"], message, True,
                                  "manifest"),
        "source": {"name": record["name"], "stream": manifest.source, "byte_start": 0,
                   "byte_end": record["size"], "sha256": record["sha256"],
                   "adapter": record["format"], "adapter_version": record["format_version"]},
        "clock": {"synced": None, "offset_ms": None},
        "qc": {"origin": None, "note": "products are not readings: no QC"},
        "log": _log(catalog, record, signing_key)}


def _batch(record: dict, readings: int) -> dict:
    return {"id": batch_id(record["station"], record["epoch"], record["seq"]),
            "station": record["station"], "epoch": record["epoch"], "seq": record["seq"],
            "readings": readings, "created_at": record["created_at"],
            "received_at": record["received_at"], "committed_at": record["committed_at"],
            "committed_by": record["committed_by"]}


def _station(catalog: Catalog, station: str) -> dict:
    found = catalog.find(station) or {}
    return {"id": station, "name": found.get("name"), "network": found.get("network"),
            "latitude": found.get("latitude"), "longitude": found.get("longitude")}


def key_status_at(key: dict, when: str) -> str:
    """A key's status at ``when`` (UTC text): active unless it was revoked or retired by
    then."""
    if key["revoked_at"] is not None and key["revoked_at"] <= when:
        return "revoked"
    if key["retire_at"] is not None and format_utc(key["retire_at"], fixed=True) <= when:
        return "retired"
    return "active" if key["created_at"] <= when else "not yet registered"


def digest_list(digests: bytes) -> list[bytes]:
    """A bundle's signed digest list, one SHA-256 per batch body."""
    return [digests[i:i + 32] for i in range(0, len(digests), 32)]


def signed_message_of(record: dict, body_sha256: bytes | None = None) -> tuple[bytes, bool]:
    """What the station signed for a stored batch, and whether that covers its body (for a
    bundled batch: whether the bundle's digest list holds the body's digest, which the
    caller may have taken already)."""
    digests = record["bundle_digests"]
    if wire.is_v2_body(record["body"]):
        # v2 signs each body's context digest and body digest (docs/protocol.md)
        pair = (hashlib.sha256(record.get("context") or b"").digest()
                + (body_sha256 or hashlib.sha256(record["body"]).digest()))
        if digests is None:
            return wire.signed_message_v2(record["topic"], pair), True
        pairs = [digests[i:i + 64] for i in range(0, len(digests), 64)]
        return wire.signed_message_v2(record["topic"], digests), pair in pairs
    if digests is None:
        return wire.signed_message(record["topic"], record["body"]), True
    body_sha256 = body_sha256 or hashlib.sha256(record["body"]).digest()
    covered = body_sha256 in digest_list(digests)
    return wire.signed_bundle(record["topic"], digests), covered


def verifies(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def _signature(catalog: Catalog, record: dict) -> dict:
    digests = record["bundle_digests"]
    message, covered = signed_message_of(record)
    return _signature_of(catalog, record, record["body"], message, covered,
                        "bundle" if digests is not None else "batch",
                        None if digests is None else digest_list(digests))


def _signature_of(catalog: Catalog, record: dict, body: bytes, message: bytes, covered: bool,
                 signed: str, digests: list[bytes] | None = None) -> dict:
    """A stored signature as the chain shows it: the key and its status when the record
    arrived, the signed body (a batch, a product's manifest) and whether it verifies."""
    key = catalog.key_record(record["key_id"])
    valid = key is not None and covered and verifies(key["public_key"], record["signature"],
                                                     message)
    return {"algorithm": "Ed25519", "key_id": record["key_id"],
            "public_key": key["public_key"].hex() if key else None,
            "key_status_now": key["status"] if key else "unknown",
            "key_status_when_received": key_status_at(key, record["received_at"])
            if key else "unknown",
            "signature": record["signature"].hex(), "valid": valid,
            "topic": record["topic"], "signed": signed,
            "body": base64.b64encode(body).decode(),
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "bundle_digests": None if digests is None else [d.hex() for d in digests],
            "signed_message_sha256": hashlib.sha256(message).hexdigest()}


def _batch_qc(catalog: Catalog, record: dict) -> dict:
    """Where QC ran, and per check how many of the batch's readings it ran on and
    flagged."""
    names = catalog.qc_check_names()
    counts: dict[str, dict[str, int]] = {}
    flags: dict[int, int] = {}
    for row in batch_rows(catalog, record):
        flags[row[10]] = flags.get(row[10], 0) + 1
        for bit, name in names.items():
            if row[11] >> bit & 1:
                entry = counts.setdefault(name, {"ran": 0, "flagged": 0})
                entry["ran"] += 1
                entry["flagged"] += row[12] >> bit & 1
    return {"origin": record["qc_origin"], "checks": counts,
            "flags": {str(flag): count for flag, count in sorted(flags.items())},
            "columns_sha256": record["qc_sha256"].hex() if record["qc_sha256"] else None}


def batch_rows(catalog: Catalog, record: dict) -> list[tuple]:
    """The batch's observation rows as stored (its ``readings`` of them from first_row)."""
    if record["first_row"] is None:
        return []
    return catalog.observation_rows(record["first_row"],
                                    record["first_row"] + record["readings"] - 1)


def _observation(catalog: Catalog, ident: Identifier, record: dict, signed) -> dict:
    if not 0 <= ident.index < len(signed.times) or record["first_row"] is None:
        raise NoSuchRecordError(f"batch {batch_id(ident.station, ident.epoch, ident.seq)} "
                                f"holds {len(signed.times)} observations, numbered from 0; "
                                f"it has no observation {ident.index}")
    rows = catalog.observation_rows(record["first_row"] + ident.index,
                                    record["first_row"] + ident.index)
    if not rows or rows[0][1] != record["id"]:
        raise NoSuchRecordError(f"{ident}: the catalog's row of this observation is missing "
                                "(`obslink catalog verify` says more)")
    (row_id, _batch_id, element, unit, source_field, period_s, source_unit, observed_us,
     value, source_flag, qc, ran, failed) = rows[0]
    names = catalog.qc_check_names()
    field = signed.fields[signed.field_index[ident.index]]
    return {"id": str(ident), "row": row_id, "observed_at": format_utc(observed_us, fixed=True),
            "element": element, "unit": unit, "source_field": source_field,
            "period_s": period_s, "source_unit": source_unit, "value": value,
            "source_flag": source_flag, "qc": qc,
            "qc_ran": [names.get(bit, f"bit {bit}") for bit in _bits(ran)],
            "qc_flagged": [names.get(bit, f"bit {bit}") for bit in _bits(failed)],
            "as_signed": {"observed_at": format_utc(signed.times[ident.index], fixed=True),
                          "element": field[0], "unit": field[1], "source_field": field[2],
                          "value": signed.values[ident.index],
                          "source_flag": signed.flags.get(ident.index)},
            "matches_signed": not row_differences(rows[0], signed, ident.index)}


def row_differences(row: tuple, signed, index: int) -> list[str]:
    """How a stored observation row (Catalog.observation_rows) differs from reading
    ``index`` of its signed batch (decoded columns): time, field, value, source flag."""
    (_row_id, _batch_id, element, unit, source_field, period_s, source_unit, observed_us,
     value, source_flag, *_qc) = row
    stored_field = (element, unit, source_field, period_s, source_unit)
    signed_field = tuple(signed.fields[signed.field_index[index]])
    signed_flag = signed.flags.get(index)
    differences = []
    if observed_us != signed.times[index]:
        differences.append(f"time {format_utc(observed_us, fixed=True)} (signed "
                           f"{format_utc(signed.times[index], fixed=True)})")
    if stored_field != signed_field:
        differences.append(f"field {stored_field} (signed {signed_field})")
    if value != signed.values[index]:
        differences.append(f"value {value!r} (signed {signed.values[index]!r})")
    if source_flag != signed_flag:
        differences.append(f"source flag {source_flag!r} (signed {signed_flag!r})")
    return differences


def _bits(mask: int) -> list[int]:
    return [bit for bit in range(mask.bit_length()) if mask >> bit & 1]


def _log(catalog: Catalog, record: dict, signing_key) -> dict:
    index = record["log_index"]
    if index is None:
        return {"index": None, "note": "this batch is not in the log (`obslink catalog "
                "verify` says why)"}
    head = catalog.head_covering(index)
    if head is None and signing_key is not None:
        head = catalog.sign_tree_head(signing_key)
    found = {"index": index, "leaf_hash": record["leaf_hash"].hex(), "tree_head": None,
             "inclusion_proof": None, "verified": False}
    if head is None:
        found["note"] = ("no signed tree head holds this batch yet: the collector signs one "
                         "every --tree-head-interval, or `obslink catalog tree-head --sign`")
        return found
    proof = catalog.inclusion(index, head["size"])[2]
    found["tree_head"] = show_tree_head(head)
    found["inclusion_proof"] = [step.hex() for step in proof]
    found["verified"] = tree_head_valid(head) and merkle.verify_inclusion(
        record["leaf_hash"], index, head["size"], proof, head["root"])
    return found


def show_tree_head(head: dict) -> dict:
    return {"id": head["id"], "size": head["size"], "root": head["root"].hex(),
            "signed_at": format_utc(head["signed_at"], fixed=True),
            "signed_at_us": head["signed_at"], "key_id": head["key_id"],
            "public_key": head["public_key"].hex(), "signature": head["signature"].hex()}


def tree_head_valid(head: dict, public_key: bytes | None = None) -> bool:
    """Whether the head's signature verifies (against ``public_key`` when given, else the
    key stored with it)."""
    return verifies(public_key or head["public_key"], head["signature"],
                    tree_head_message(head["size"], head["root"], head["signed_at"]))

