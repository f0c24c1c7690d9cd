"""The Merkle tree of RFC 6962 / RFC 9162 (section 2.1): tree hashes, inclusion and
consistency proofs and their verification, over a list of leaf hashes. Nothing here knows
what a leaf holds (server/catalog/log_entries.py does) or where leaves are stored.

Interoperable on purpose: a third party checks our proofs with any RFC 6962 verifier, and
the tests check this module against the Certificate Transparency reference vectors.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(size: int) -> int:
    """The largest power of two smaller than ``size`` (size > 1): RFC 6962's k."""
    return 1 << ((size - 1).bit_length() - 1)


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of leaf hashes, in one pass: the stack holds the roots of the complete
    subtrees seen so far, as a log's frontier does."""
    if not leaves:
        return EMPTY_ROOT
    frontier = Frontier()
    frontier.extend(leaves)
    return frontier.root()


class Frontier:
    """The roots of the complete subtrees of a growing tree (at most log2(n) of them): a
    leaf is appended and the tree's root computed without the earlier leaves."""

    def __init__(self) -> None:
        self.size = 0
        self.stack: list[bytes] = []  # largest subtree first

    def append(self, leaf: bytes) -> None:
        self.stack.append(leaf)
        self.size += 1
        merges = self.size
        while not merges & 1:  # each trailing zero bit of the size closes a subtree
            right = self.stack.pop()
            self.stack.append(node_hash(self.stack.pop(), right))
            merges >>= 1

    def extend(self, leaves) -> None:
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        if not self.stack:
            return EMPTY_ROOT
        found = self.stack[-1]
        for left in reversed(self.stack[:-1]):
            found = node_hash(left, found)
        return found


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]): the audit path of leaf ``index`` in the tree of ``leaves``."""
    if not 0 <= index < len(leaves):
        raise ValueError(f"leaf {index} is not in a tree of {len(leaves)} leaves")
    path: list[bytes] = []
    lo, hi = 0, len(leaves)
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            path.append(root(leaves[lo + k:hi]))
            hi = lo + k
        else:
            path.append(root(leaves[lo:lo + k]))
            lo += k
    path.reverse()  # the recursion above walks down from the root; proofs go up
    return path


def consistency_proof(old_size: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]): shows the tree of ``old_size`` leaves is a prefix of ``leaves``."""
    size = len(leaves)
    if not 0 <= old_size <= size:
        raise ValueError(f"a tree of {old_size} leaves is not a prefix of one of {size}")
    if old_size in (0, size):
        return []
    path: list[bytes] = []
    lo, hi, m, whole = 0, size, old_size, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            path.append(root(leaves[lo + k:hi]))
            hi = lo + k
        else:
            path.append(root(leaves[lo:lo + k]))
            lo, m, whole = lo + k, m - k, False
    if not whole:
        path.append(root(leaves[lo:hi]))
    path.reverse()
    return path


def verify_inclusion(leaf: bytes, index: int, size: int, path: Sequence[bytes],
                     expected_root: bytes) -> bool:
    """RFC 9162 2.1.3.2."""
    if not 0 <= index < size:
        return False
    fn, sn, found = index, size - 1, leaf
    for sibling in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            found = node_hash(sibling, found)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            found = node_hash(found, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and found == expected_root


def verify_consistency(old_size: int, size: int, old_root: bytes, new_root: bytes,
                       path: Sequence[bytes]) -> bool:
    """RFC 9162 2.1.4.2."""
    if not 0 <= old_size <= size:
        return False
    if old_size == size:
        return not path and old_root == new_root
    if old_size == 0:
        return not path
    if not path:
        return False
    path = list(path)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is a subtree
        path.insert(0, old_root)
    fn, sn = old_size - 1, size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for sibling in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(sibling, fr)
            sr = node_hash(sibling, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, sibling)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0
