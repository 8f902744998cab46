"""Proofs for every index and size up to 64, against an independent reading of RFC 9162."""

from __future__ import annotations

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tlog
from tests.unit.tlog.conftest import flip, leaves, ref_mth, ref_path, ref_proof

MAX = 64
LEAVES = leaves(MAX)
ROOTS = [ref_mth(LEAVES[:n]) for n in range(MAX + 1)]
# Stored nodes make each proof O(log n); test_proofs_from_stored_nodes_equal_proofs_from_leaves
# checks that they give the same proofs as the leaf list.
_, _NODES = tlog.CompactRange().extend_nodes(LEAVES)
READ = {(n.level, n.index): n.digest for n in _NODES}.__getitem__


def read(level: int, index: int) -> bytes:
    return READ((level, index))


def rejects_inclusion(leaf: bytes, index: int, size: int, proof: object, root: bytes) -> bool:
    try:
        tlog.verify_inclusion(leaf, index=index, size=size, proof=proof, root=root)  # type: ignore[arg-type]
    except tlog.InclusionNotProven:
        return True
    return False


def rejects_consistency(old: int, new: int, old_root: bytes, new_root: bytes, proof: object) -> bool:
    try:
        tlog.verify_consistency(old_size=old, new_size=new, old_root=old_root, new_root=new_root,
                                proof=proof)  # type: ignore[arg-type]
    except tlog.ConsistencyNotProven:
        return True
    return False


def test_roots_of_every_size() -> None:
    rng = tlog.CompactRange()
    for size in range(MAX + 1):
        assert tlog.root_hash(LEAVES[:size]) == ROOTS[size] == rng.root()
        assert tlog.root_at(tlog.leaf_reader(LEAVES), size) == ROOTS[size]
        if size < MAX:
            rng = rng.append(LEAVES[size])


@pytest.mark.parametrize("size", range(1, MAX + 1))
def test_every_inclusion_proof_verifies_and_pins_its_index(size: int) -> None:
    tree = LEAVES[:size]
    for index in range(size):
        proof = tlog.inclusion_proof_from(read, index, size)
        assert list(proof) == ref_path(index, tree)
        assert len(proof) <= (size - 1).bit_length()
        tlog.verify_inclusion(tree[index], index=index, size=size, proof=proof, root=ROOTS[size])
        assert all(rejects_inclusion(tree[index], other, size, proof, ROOTS[size])
                   for other in range(size + 2) if other != index)


@pytest.mark.parametrize("size", range(1, MAX + 1))
def test_every_changed_hash_breaks_an_inclusion_proof(size: int) -> None:
    tree, root = LEAVES[:size], ROOTS[size]
    for index in range(size):
        proof = tlog.inclusion_proof_from(read, index, size)
        assert rejects_inclusion(flip(tree[index], index), index, size, proof, root)
        assert rejects_inclusion(tree[index], index, size, proof, flip(root, index))
        for i in range(len(proof)):
            changed = [*proof[:i], flip(proof[i], index + i), *proof[i + 1:]]
            assert rejects_inclusion(tree[index], index, size, changed, root)
        assert rejects_inclusion(tree[index], index, size, [*proof, root], root)
        if proof:
            assert rejects_inclusion(tree[index], index, size, proof[:-1], root)


@pytest.mark.parametrize("new", range(1, MAX + 1))
def test_every_consistency_proof_verifies_and_breaks_when_tampered(new: int) -> None:
    tree, new_root = LEAVES[:new], ROOTS[new]
    for old in range(new + 1):
        old_root, proof = ROOTS[old], tlog.consistency_proof_from(read, old, new)
        assert list(proof) == ref_proof(old, tree)
        tlog.verify_consistency(old_size=old, new_size=new, old_root=old_root, new_root=new_root, proof=proof)
        assert rejects_consistency(old, new, flip(old_root, new), new_root, proof)
        assert rejects_consistency(old, new, old_root, new_root, [*proof, new_root])
        assert rejects_consistency(old, new, old_root, new_root, [old_root, *proof])
        for i in range(len(proof)):
            changed = [*proof[:i], flip(proof[i], old + i), *proof[i + 1:]]
            assert rejects_consistency(old, new, old_root, new_root, changed)
        if 0 < old:
            assert rejects_consistency(old, new, old_root, flip(new_root, old), proof)
        if 0 < old < new:
            assert rejects_consistency(old, new, old_root, new_root, proof[:-1])
            assert rejects_consistency(old, new, new_root, old_root, proof)
            assert all(rejects_consistency(other, new, old_root, new_root, proof)
                       for other in range(new + 2) if other != old)


def test_a_tree_is_consistent_with_itself_and_grows_from_empty() -> None:
    empty = tlog.EMPTY_ROOT
    tlog.verify_consistency(old_size=0, new_size=0, old_root=empty, new_root=empty, proof=[])
    tlog.verify_consistency(old_size=5, new_size=5, old_root=ROOTS[5], new_root=ROOTS[5], proof=())
    assert rejects_consistency(5, 5, ROOTS[5], ROOTS[6], [])
    assert rejects_consistency(5, 5, ROOTS[5], ROOTS[5], [ROOTS[5]])
    # Stricter than transparency-dev/merkle: the empty tree has one root, SHA-256 of nothing.
    assert rejects_consistency(0, 7, ROOTS[1], ROOTS[7], [])
    assert rejects_consistency(0, 7, tlog.EMPTY_ROOT, ROOTS[7], [ROOTS[7]])
    assert rejects_consistency(7, 6, ROOTS[7], ROOTS[6], [])


def test_proofs_from_stored_nodes_equal_proofs_from_leaves() -> None:
    rng, nodes = tlog.CompactRange().extend_nodes(LEAVES)
    table = {(n.level, n.index): n.digest for n in nodes}
    reads: list[tuple[int, int]] = []

    def read(level: int, index: int) -> bytes:
        reads.append((level, index))
        return table[(level, index)]

    assert rng.root() == ROOTS[MAX]
    for size in range(1, MAX + 1):
        assert tlog.compact_range_at(read, size) == tlog.CompactRange().extend(LEAVES[:size])
        for index in range(size):
            reads.clear()
            assert tlog.inclusion_proof_from(read, index, size) == tlog.inclusion_proof(LEAVES[:size], index)
            assert len(reads) <= 2 * size.bit_length()
        for old in range(size + 1):
            assert tlog.consistency_proof_from(read, old, size) == tlog.consistency_proof(LEAVES[:size], old)


def test_a_compact_range_resumes_where_it_stopped() -> None:
    whole, all_nodes = tlog.CompactRange().extend_nodes(LEAVES)
    assert whole == tlog.CompactRange().extend(LEAVES)
    for cut in range(MAX + 1):
        half, first = tlog.CompactRange().extend_nodes(LEAVES[:cut])
        stored = tlog.CompactRange(half.size, half.nodes)  # as a store would keep and reload it
        resumed, rest = stored.extend_nodes(LEAVES[cut:])
        assert resumed == whole and first + rest == all_nodes
        assert functools.reduce(tlog.CompactRange.append, LEAVES[cut:], stored) == whole


@pytest.mark.parametrize(("size", "nodes"), [(-1, ()), (1, ()), (2, (b"x" * 32, b"y" * 32)), (1, (b"short",)),
                                             (True, (b"x" * 32,)), (1 << 64, ())])
def test_a_malformed_compact_range_is_refused(size: int, nodes: tuple[bytes, ...]) -> None:
    with pytest.raises(tlog.MalformedRange):
        tlog.CompactRange(size, nodes)


def test_proofs_outside_the_tree_are_refused() -> None:
    with pytest.raises(tlog.NotInTree):
        tlog.inclusion_proof(LEAVES[:4], 4)
    with pytest.raises(tlog.NotInTree):
        tlog.inclusion_proof([], 0)
    with pytest.raises(tlog.NotInTree):
        tlog.consistency_proof(LEAVES[:4], 5)
    with pytest.raises(tlog.MalformedRange):
        tlog.root_hash([b"not a hash"])


@settings(max_examples=120, deadline=None)
@given(data=st.lists(st.binary(max_size=40), min_size=1, max_size=MAX, unique=True),
       pick=st.integers(0, 1 << 16), bit=st.integers(0, 255))
def test_random_logs_prove_inclusion_and_any_bit_flip_is_caught(data: list[bytes], pick: int, bit: int) -> None:
    tree = [tlog.leaf_hash(d) for d in data]
    size, index, root = len(tree), pick % len(tree), tlog.root_hash(tree)
    proof = tlog.inclusion_proof(tree, index)
    tlog.verify_inclusion(tlog.leaf_hash(data[index]), index=index, size=size, proof=proof, root=root)
    target = pick % (len(proof) + 2)
    if target == len(proof):
        assert rejects_inclusion(tree[index], index, size, proof, flip(root, bit))
    elif target == len(proof) + 1:
        assert rejects_inclusion(flip(tree[index], bit), index, size, proof, root)
    else:
        changed = [*proof[:target], flip(proof[target], bit), *proof[target + 1:]]
        assert rejects_inclusion(tree[index], index, size, changed, root)
    other = (index + 1 + pick % size) % (size + 1)
    assert other == index or rejects_inclusion(tree[index], other, size, proof, root)


@settings(max_examples=120, deadline=None)
@given(data=st.lists(st.binary(max_size=40), min_size=2, max_size=MAX), pick=st.integers(0, 1 << 16),
       bit=st.integers(0, 255))
def test_random_logs_prove_consistency_and_any_bit_flip_is_caught(data: list[bytes], pick: int,
                                                                    bit: int) -> None:
    tree = [tlog.leaf_hash(d) for d in data]
    new, old = len(tree), 1 + pick % (len(tree) - 1)
    old_root, new_root = tlog.root_hash(tree[:old]), tlog.root_hash(tree)
    proof = tlog.consistency_proof(tree, old)
    tlog.verify_consistency(old_size=old, new_size=new, old_root=old_root, new_root=new_root, proof=proof)
    target = pick % (len(proof) + 2)
    if target == len(proof):
        assert rejects_consistency(old, new, flip(old_root, bit), new_root, proof)
    elif target == len(proof) + 1:
        assert rejects_consistency(old, new, old_root, flip(new_root, bit), proof)
    else:
        changed = [*proof[:target], flip(proof[target], bit), *proof[target + 1:]]
        assert rejects_consistency(old, new, old_root, new_root, changed)


junk = st.one_of(st.none(), st.booleans(), st.integers(-(1 << 70), 1 << 70), st.text(max_size=4),
                 st.binary(max_size=40), st.lists(st.binary(min_size=31, max_size=33), max_size=70),
                 st.sampled_from([LEAVES[0], ROOTS[8], 0, 7, 8, (ROOTS[1],), [b""]]))


@settings(max_examples=150, deadline=None)
@given(leaf=junk, index=junk, size=junk, proof=junk, root=junk)
def test_inclusion_verification_is_total(leaf: object, index: object, size: object, proof: object,
                                         root: object) -> None:
    with pytest.raises(tlog.InclusionNotProven):
        tlog.verify_inclusion(leaf, index=index, size=size, proof=proof, root=root)  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(old=junk, new=junk, old_root=junk, new_root=junk, proof=junk)
def test_consistency_verification_is_total(old: object, new: object, old_root: object, new_root: object,
                                           proof: object) -> None:
    try:
        tlog.verify_consistency(old_size=old, new_size=new, old_root=old_root, new_root=new_root,  # type: ignore[arg-type]
                                proof=proof)  # type: ignore[arg-type]
    except tlog.ConsistencyNotProven:
        return
    # Only the trivially consistent cases may pass: equal sizes and roots, or growth from empty.
    assert proof in ([], ()) and ((old == new and old_root == new_root) or old == 0)
