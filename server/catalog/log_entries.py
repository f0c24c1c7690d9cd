"""What the catalog's transparency log holds (docs/provenance.md, "The log"): a leaf per
committed batch over its signed bytes and its commit metadata, and the collector's signed
tree heads. Written so that a third party rebuilds both with msgpack and hashlib alone.

- A leaf is ``msgpack([LEAF_CONTEXT, topic, key id, signature, SHA-256(body), bundle
  digest list) or nil, received_at, committed_at, committed_by, SHA-256(QC columns)])``; its
  hash is RFC 6962's ``SHA-256(0x00 || leaf)``.
- The QC columns are what the catalog stored, which the centre's QC may have replaced:
  ``msgpack([origin, [[bit, check name], …], qc, qc_ran, qc_failed])`` naming every bit
  up to the highest the masks use (null for a bit the catalog has no name for).
- A product's leaf is ``msgpack([PRODUCT_LEAF_CONTEXT, topic, key id, signature,
  SHA-256(manifest body), received_at, committed_at, committed_by])``.
- A tree head is signed (Ed25519) as ``TREE_HEAD_CONTEXT + msgpack([size, root,
  signed_at µs])``.
"""

from __future__ import annotations

import hashlib
import msgpack

from obslink.server.catalog import merkle

LEAF_CONTEXT = "obslink-log-leaf-v1"
PRODUCT_LEAF_CONTEXT = "obslink-log-product-v1"
TREE_HEAD_CONTEXT = b"obslink-tree-head-v1\n"


def leaf_hash(topic: str, key_id: str, signature: bytes, body_sha256: bytes,
              bundle_sha256: bytes | None, received_at: str, committed_at: str,
              committed_by: str, qc_sha256: bytes) -> bytes:
    """The leaf of one committed batch: ``bundle_sha256`` is the SHA-256 of its bundle's
    digest list (None for a batch signed alone), times as the catalog stores them (UTC
    text), ``committed_by`` the committing collector's key id ("" if it had none)."""
    return merkle.leaf_hash(msgpack.packb(
        [LEAF_CONTEXT, topic, key_id, signature, body_sha256, bundle_sha256, received_at,
         committed_at, committed_by, qc_sha256], use_bin_type=True))


def product_leaf_hash(topic: str, key_id: str, signature: bytes, manifest_sha256: bytes,
                      received_at: str, committed_at: str, committed_by: str) -> bytes:
    """The leaf of one registered product: over its signed manifest (which lists the
    product's SHA-256 and every chunk's) and its commit metadata."""
    return merkle.leaf_hash(msgpack.packb(
        [PRODUCT_LEAF_CONTEXT, topic, key_id, signature, manifest_sha256, received_at,
         committed_at, committed_by], use_bin_type=True))


def qc_columns_bytes(origin: str | None, names: dict[int, str], qc: list[int],
                     ran: list[int], failed: list[int]) -> bytes:
    """The stored QC columns of a batch, with the names of the check bits they use."""
    # every bit up to the highest any mask uses (max() runs in C; a reading's bits need not
    # be the highest's, so all bits below are named)
    highest = (max(ran, default=0) | max(failed, default=0)).bit_length()
    checks = [[bit, names.get(bit)] for bit in range(highest)]
    return msgpack.packb([origin, checks, list(qc), list(ran), list(failed)],
                         use_bin_type=True)


def qc_sha256(origin: str | None, names: dict[int, str], qc: list[int], ran: list[int],
              failed: list[int]) -> bytes:
    return hashlib.sha256(qc_columns_bytes(origin, names, qc, ran, failed)).digest()


def tree_head_message(size: int, root: bytes, signed_at: int) -> bytes:
    return TREE_HEAD_CONTEXT + msgpack.packb([size, root, signed_at], use_bin_type=True)
