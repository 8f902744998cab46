"""Generating RFC 9162 inclusion proofs (§2.1.3.1) and consistency proofs (§2.1.4.1).

Every element of either proof is the hash of a range of leaves that is a perfect subtree or
runs to the tree's right edge, so it is computed from O(log n) perfect subtrees. The ``*_from``
functions read those through a :data:`NodeReader` (a store's node table, say), which makes a
proof O(log n) reads; the list functions read them from the leaf hashes (O(n) hashing).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tlog._errors import NotInTree
from tlog.compact import CompactRange, root_hash
from tlog.hashing import _is_size, node_hash, split_point

NodeReader = Callable[[int, int], bytes]
"""``read(level, index)``: hash of the perfect subtree of leaves ``[index·2^level, (index+1)·2^level)``."""


def leaf_reader(leaf_hashes: Sequence[bytes]) -> NodeReader:
    """A :data:`NodeReader` that hashes perfect subtrees from a list of leaf hashes."""

    def read(level: int, index: int) -> bytes:
        if level == 0:
            return CompactRange().append(leaf_hashes[index]).nodes[0]  # checked like any other leaf
        return root_hash(leaf_hashes[index << level:(index + 1) << level])

    return read


def _range_hash(read: NodeReader, begin: int, end: int) -> bytes:
    """MTH of leaves ``[begin, end)``, a range that is a subtree of some tree in RFC 9162's recursion.

    Such a range splits into perfect subtrees, largest first, each aligned to its own size;
    its hash folds them from the right.
    """
    if not 0 <= begin < end:
        raise NotInTree(f"[{begin}, {end}) is not a range of leaves")
    parts = []
    while begin < end:
        level = (end - begin).bit_length() - 1
        parts.append(read(level, begin >> level))
        begin += 1 << level
    digest = parts.pop()
    while parts:
        digest = node_hash(parts.pop(), digest)
    return digest


def root_at(read: NodeReader, size: int) -> bytes:
    """MTH of the first ``size`` leaves."""
    return compact_range_at(read, size).root()


def compact_range_at(read: NodeReader, size: int) -> CompactRange:
    """The compact range of the first ``size`` leaves, to resume appending at ``size``."""
    _check_size(size)
    nodes, begin = [], 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            nodes.append(read(level, begin >> level))
            begin += 1 << level
    return CompactRange(size, tuple(nodes))


def inclusion_proof_from(read: NodeReader, index: int, size: int) -> tuple[bytes, ...]:
    """PATH(index, D[0:size]): the audit path of leaf ``index`` in the tree of ``size`` leaves."""
    _check_size(size)
    if not _is_size(index) or index >= size:
        raise NotInTree(f"no leaf {index!r} in a tree of {size} leaves")
    path, begin, end = [], 0, size
    while end - begin > 1:
        mid = begin + split_point(end - begin)
        if index < mid:
            path.append(_range_hash(read, mid, end))
            end = mid
        else:
            path.append(_range_hash(read, begin, mid))
            begin = mid
    path.reverse()
    return tuple(path)


def consistency_proof_from(read: NodeReader, old_size: int, new_size: int) -> tuple[bytes, ...]:
    """PROOF(old_size, D[0:new_size]); empty when ``old_size`` is 0 or equals ``new_size``."""
    _check_size(new_size)
    if not _is_size(old_size) or old_size > new_size:
        raise NotInTree(f"no tree of {old_size!r} leaves inside a tree of {new_size} leaves")
    if old_size in (0, new_size):
        return ()
    # SUBPROOF(m, D[begin:end], complete), unrolled; m counts leaves from begin.
    proof, begin, end, m, complete = [], 0, new_size, old_size, True
    while m != end - begin:
        k = split_point(end - begin)
        if m <= k:
            proof.append(_range_hash(read, begin + k, end))
            end = begin + k
        else:
            proof.append(_range_hash(read, begin, begin + k))
            begin, m, complete = begin + k, m - k, False
    if not complete:
        proof.append(_range_hash(read, begin, end))
    proof.reverse()
    return tuple(proof)


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> tuple[bytes, ...]:
    """The audit path of leaf ``index`` in the tree of all ``leaf_hashes``."""
    return inclusion_proof_from(leaf_reader(leaf_hashes), index, len(leaf_hashes))


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> tuple[bytes, ...]:
    """The consistency proof from the first ``old_size`` leaves to all ``leaf_hashes``."""
    return consistency_proof_from(leaf_reader(leaf_hashes), old_size, len(leaf_hashes))


def _check_size(size: int) -> None:
    if not _is_size(size):
        raise NotInTree(f"{size!r} is not a tree size")
