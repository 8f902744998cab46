"""Known answers: the RFC 6962/9162 reference tree and transparency-dev/merkle's proof vectors."""

from __future__ import annotations

import base64
from typing import Any

import pytest

import tlog
from tests.unit.tlog.conftest import VECTORS

TREE = VECTORS["reference_tree"]
DATA = [bytes.fromhex(h) for h in TREE["leaf_inputs"]]
LEAVES = [tlog.leaf_hash(d) for d in DATA]
ROOTS = [bytes.fromhex(h) for h in TREE["root_hashes_by_size"]]
NODES = [[bytes.fromhex(h) for h in level] for level in TREE["node_hashes"]]
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def hexes(values: list[str]) -> tuple[bytes, ...]:
    return tuple(bytes.fromhex(v) for v in values)


def b64s(values: list[str] | None) -> list[bytes]:
    return [base64.b64decode(v) for v in values or []]


def test_hasher_known_answers() -> None:
    kat = VECTORS["rfc6962_hasher"]
    assert tlog.EMPTY_ROOT.hex() == kat["empty_root"]
    assert tlog.leaf_hash(b"").hex() == kat["empty_leaf"]
    assert tlog.leaf_hash(b"L123456").hex() == kat["leaf_L123456"]
    assert tlog.node_hash(b"N123", b"N456").hex() == kat["node_N123_N456"]


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    left, right = tlog.leaf_hash(b"Hello"), tlog.leaf_hash(b"World")
    assert tlog.node_hash(left, right) != tlog.leaf_hash(left + right)
    assert tlog.node_hash(left, right) != tlog.node_hash(right, left)


@pytest.mark.parametrize("size", range(9))
def test_reference_tree_roots(size: int) -> None:
    assert tlog.root_hash(LEAVES[:size]) == ROOTS[size]
    assert tlog.CompactRange().extend(LEAVES[:size]).root() == ROOTS[size]


@pytest.mark.parametrize("size", range(9))
def test_reference_compact_trees(size: int) -> None:
    want = tuple(NODES[level][index] for level, index in TREE["compact_trees"][size])
    assert tlog.CompactRange().extend(LEAVES[:size]).nodes == want


def test_every_reference_node_is_emitted_once() -> None:
    _, nodes = tlog.CompactRange().extend_nodes(LEAVES)
    assert {(n.level, n.index): n.digest for n in nodes} == {
        (level, index): digest for level, row in enumerate(NODES) for index, digest in enumerate(row)}
    assert len(nodes) == sum(len(row) for row in NODES)


@pytest.mark.parametrize("case", VECTORS["reference_inclusion_proofs"]["cases"], ids=str)
def test_reference_inclusion_proofs(case: dict[str, Any]) -> None:
    index, size, want = case["index"], case["size"], hexes(case["proof"])
    assert tlog.inclusion_proof(LEAVES[:size], index) == want
    tlog.verify_inclusion(LEAVES[index], index=index, size=size, proof=want, root=ROOTS[size])


@pytest.mark.parametrize("case", VECTORS["reference_consistency_proofs"]["cases"], ids=str)
def test_reference_consistency_proofs(case: dict[str, Any]) -> None:
    old, new, want = case["size1"], case["size2"], hexes(case["proof"])
    assert tlog.consistency_proof(LEAVES[:new], old) == want
    tlog.verify_consistency(old_size=old, new_size=new, old_root=ROOTS[old], new_root=ROOTS[new], proof=want)


def inclusion_probes(index: int, size: int, proof: list[bytes], root: bytes,
                     leaf: bytes) -> list[tuple[str, int, int, list[bytes], bytes, bytes]]:
    """proof/verify_test.go corruptInclusionProof: every probe must be rejected."""
    probes = [
        ("leafIndex - 1", index - 1, size, proof, root, leaf),
        ("leafIndex + 1", index + 1, size, proof, root, leaf),
        ("leafIndex ^ 2", index ^ 2, size, proof, root, leaf),
        ("treeSize * 2", index, size * 2, proof, root, leaf),
        ("treeSize / 2", index, size // 2, proof, root, leaf),
        ("wrong leaf", index, size, proof, root, b"WrongLeaf"),
        ("empty root", index, size, proof, tlog.EMPTY_ROOT, leaf),
        ("random root", index, size, proof, SOME_HASH, leaf),
        ("trailing garbage", index, size, [*proof, b""], root, leaf),
        ("trailing root", index, size, [*proof, root], root, leaf),
        ("preceding garbage", index, size, [b"", *proof], root, leaf),
        ("preceding root", index, size, [root, *proof], root, leaf),
    ]
    for i in range(len(proof)):
        wrong = list(proof)
        wrong[i] = bytes([wrong[i][0] ^ 8]) + wrong[i][1:]
        probes.append((f"modified proof[{i}] bit 3", index, size, wrong, root, leaf))
    if proof:
        probes.append(("removed component", index, size, proof[:-1], root, leaf))
    if len(proof) > 1:
        probes.append(("inserted component", index, size, [proof[0], SOME_HASH, *proof[1:]], root, leaf))
    return probes


@pytest.mark.parametrize("case", VECTORS["testdata_inclusion"]["cases"], ids=lambda c: c["file"])
def test_transparency_dev_inclusion_testdata(case: dict[str, Any]) -> None:
    leaf, root, proof = base64.b64decode(case["leafHash"]), base64.b64decode(case["root"]), b64s(case["proof"])
    index, size = case["leafIdx"], case["treeSize"]
    if case["wantErr"]:
        with pytest.raises(tlog.InclusionNotProven):
            tlog.verify_inclusion(leaf, index=index, size=size, proof=proof, root=root)
        return
    tlog.verify_inclusion(leaf, index=index, size=size, proof=proof, root=root)
    assert tlog.inclusion_proof(LEAVES[:size], index) == tuple(proof)
    for desc, i, n, p, r, h in inclusion_probes(index, size, proof, root, leaf):
        with pytest.raises(tlog.InclusionNotProven):
            tlog.verify_inclusion(h, index=i, size=n, proof=p, root=r)
            pytest.fail(f"verified against {desc}")


def consistency_probes(size1: int, size2: int, root1: bytes, root2: bytes,
                       proof: list[bytes]) -> list[tuple[str, int, int, bytes, bytes, list[bytes]]]:
    """proof/verify_test.go corruptConsistencyProof: every probe must be rejected."""
    probes = [
        ("size1 - 1", size1 - 1, size2, root1, root2, proof),
        ("size1 + 1", size1 + 1, size2, root1, root2, proof),
        ("size1 ^ 2", size1 ^ 2, size2, root1, root2, proof),
        ("size2 * 2", size1, size2 * 2, root1, root2, proof),
        ("size2 / 2", size1, size2 // 2, root1, root2, proof),
        ("wrong root1", size1, size2, b"WrongRoot", root2, proof),
        ("wrong root2", size1, size2, root1, b"WrongRoot", proof),
        ("swapped roots", size1, size2, root2, root1, proof),
        ("empty proof", size1, size2, root1, root2, []),
        ("trailing garbage", size1, size2, root1, root2, [*proof, b""]),
        ("trailing root1", size1, size2, root1, root2, [*proof, root1]),
        ("trailing root2", size1, size2, root1, root2, [*proof, root2]),
        ("preceding garbage", size1, size2, root1, root2, [b"", *proof]),
        ("preceding root1", size1, size2, root1, root2, [root1, *proof]),
        ("preceding root2", size1, size2, root1, root2, [root2, *proof]),
        ("preceding proof[0]", size1, size2, root1, root2, [proof[0], *proof]),
        ("truncated proof", size1, size2, root1, root2, proof[:-1]),
    ]
    for i in range(len(proof)):
        wrong = list(proof)
        wrong[i] = bytes([wrong[i][0] ^ 16]) + wrong[i][1:]
        probes.append((f"modified proof[{i}] bit 4", size1, size2, root1, root2, wrong))
    return probes


@pytest.mark.parametrize("case", VECTORS["testdata_consistency"]["cases"], ids=lambda c: c["file"])
def test_transparency_dev_consistency_testdata(case: dict[str, Any]) -> None:
    size1, size2, proof = case["size1"], case["size2"], b64s(case["proof"])
    root1, root2 = base64.b64decode(case["root1"]), base64.b64decode(case["root2"])
    if case["wantErr"]:
        with pytest.raises(tlog.ConsistencyNotProven):
            tlog.verify_consistency(old_size=size1, new_size=size2, old_root=root1, new_root=root2, proof=proof)
        return
    tlog.verify_consistency(old_size=size1, new_size=size2, old_root=root1, new_root=root2, proof=proof)
    assert tlog.consistency_proof(LEAVES[:size2], size1) == tuple(proof)
    if not proof:
        return
    for desc, s1, s2, r1, r2, p in consistency_probes(size1, size2, root1, root2, proof):
        with pytest.raises(tlog.ConsistencyNotProven):
            tlog.verify_consistency(old_size=s1, new_size=s2, old_root=r1, new_root=r2, proof=p)
            pytest.fail(f"verified against {desc}")


@pytest.mark.parametrize(("index", "size"), [(0, 0), (0, 1), (1, 0), (2, 1)])
def test_transparency_dev_invalid_inclusion_inputs(index: int, size: int) -> None:
    # proof/verify_test.go TestVerifyInclusion: an empty proof with a bad root or leaf never verifies.
    for leaf, root in ((SOME_HASH, b""), (b"", tlog.EMPTY_ROOT), (SOME_HASH, tlog.EMPTY_ROOT)):
        with pytest.raises(tlog.InclusionNotProven):
            tlog.verify_inclusion(leaf, index=index, size=size, proof=[], root=root)


def test_single_leaf_tree_root_is_the_leaf_hash() -> None:
    # proof/verify_test.go TestVerifyInclusionSingleEntry.
    digest = tlog.leaf_hash(b"data")
    tlog.verify_inclusion(digest, index=0, size=1, proof=[], root=digest)
    for leaf, root in ((digest, b""), (b"", digest), (b"", b"")):
        with pytest.raises(tlog.InclusionNotProven):
            tlog.verify_inclusion(leaf, index=0, size=1, proof=[], root=root)
