"""The transparency log's Merkle tree against RFC 6962's reference vectors (as published by
the Certificate Transparency projects, e.g. transparency-dev/merkle's testonly constants),
and its proofs as properties: every genuine proof verifies, anything changed does not."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from obslink.server.catalog import merkle
from obslink.server.catalog.identifiers import IdentifierError, parse_identifier

# the reference leaves and the root of each tree size 0..8
LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f")]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
INCLUSION = {  # (leaf index, tree size) -> audit path
    (0, 8): ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
    (5, 8): ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
             "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"],
}
CONSISTENCY = {  # (old size, new size) -> proof
    (2, 5): ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"],
}
HASHES = [merkle.leaf_hash(leaf) for leaf in LEAVES]


def test_tree_heads_are_rfc6962s():
    for size, expected in enumerate(ROOTS):
        assert merkle.root(HASHES[:size]).hex() == expected, size


def test_proofs_are_rfc6962s_and_verify():
    for (index, size), path in INCLUSION.items():
        proof = merkle.inclusion_proof(index, HASHES[:size])
        assert [step.hex() for step in proof] == path
        assert merkle.verify_inclusion(HASHES[index], index, size, proof,
                                       bytes.fromhex(ROOTS[size]))
    for (old, new), path in CONSISTENCY.items():
        proof = merkle.consistency_proof(old, HASHES[:new])
        assert [step.hex() for step in proof] == path
        assert merkle.verify_consistency(old, new, bytes.fromhex(ROOTS[old]),
                                         bytes.fromhex(ROOTS[new]), proof)


def test_a_frontier_grows_to_the_same_root_as_the_whole_tree():
    frontier = merkle.Frontier()
    for size in range(1, len(HASHES) + 1):
        frontier.append(HASHES[size - 1])
        assert frontier.root().hex() == ROOTS[size]


leaves = st.lists(st.binary(max_size=8), min_size=1, max_size=70, unique=True)


@settings(max_examples=200, deadline=None)
@given(leaves, st.data())
@example([b"a"], None)
def test_every_inclusion_proof_verifies_and_a_changed_one_does_not(data, draw):
    hashes = [merkle.leaf_hash(leaf) for leaf in data]
    size, root = len(hashes), merkle.root(hashes)
    index = draw.draw(st.integers(0, size - 1)) if draw else 0
    proof = merkle.inclusion_proof(index, hashes)
    assert merkle.verify_inclusion(hashes[index], index, size, proof, root)
    other = (index + 1) % size
    if other != index:
        assert not merkle.verify_inclusion(hashes[other], index, size, proof, root)
        assert not merkle.verify_inclusion(hashes[index], other, size, proof, root)
    for step in range(len(proof)):
        changed = list(proof)
        changed[step] = bytes([changed[step][0] ^ 1]) + changed[step][1:]
        assert not merkle.verify_inclusion(hashes[index], index, size, changed, root)
    # (the size is not always bound by the path: leaf 0 of 3 and of 4 have the same one;
    # a tree head signs its size with its root)


@settings(max_examples=200, deadline=None)
@given(leaves, st.data())
def test_every_consistency_proof_verifies_and_a_rewritten_past_does_not(data, draw):
    hashes = [merkle.leaf_hash(leaf) for leaf in data]
    size = len(hashes)
    old = draw.draw(st.integers(0, size))
    proof = merkle.consistency_proof(old, hashes)
    old_root, new_root = merkle.root(hashes[:old]), merkle.root(hashes)
    assert merkle.verify_consistency(old, size, old_root, new_root, proof)
    if 0 < old < size:
        rewritten = [merkle.leaf_hash(b"x" + leaf) for leaf in data[:old]] + hashes[old:]
        assert not merkle.verify_consistency(old, size, merkle.root(rewritten[:old]),
                                             new_root, proof)


def test_identifiers_round_trip_and_bad_ones_say_what_they_should_be():
    for text in ("obslink:0-20000-0-54511/surface", "obslink:S1/ed1c81be9ae8e013/2",
                 "obslink:S1/ed1c81be9ae8e013/2/17"):
        assert str(parse_identifier(text)) == text
    assert parse_identifier("obslink:S1/ab/2/17").kind == "observation"
    assert parse_identifier("obslink:S1/ab/2").kind == "batch"
    assert parse_identifier("obslink:S1/surface").kind == "dataset"
    for bad in ("S1/ab/2", "obslink:S1", "obslink:S1/ab/x", "obslink:S1/ab/2/-1",
                "obslink:S1/ab/2/3/4", "obslink:S 1/ab/2"):
        with pytest.raises(IdentifierError, match="obslink:STATION/EPOCH/SEQ"):
            parse_identifier(bad)
