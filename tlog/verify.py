"""Verifying RFC 9162 inclusion proofs (§2.1.3.2) and consistency proofs (§2.1.4.2).

Total: any input (a wrong type, a hash of the wrong length, an index past the end, a proof
too long or too short) ends in :class:`~tlog.InclusionNotProven` or
:class:`~tlog.ConsistencyNotProven` with the reason, never in another exception.
Verification only ever succeeds by returning ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from tlog._errors import ConsistencyNotProven, InclusionNotProven
from tlog.hashing import EMPTY_ROOT, HASH_SIZE, MAX_SIZE, _is_hash, _is_size, node_hash

_MAX_PROOF = 128  # caps the work on hostile input; the algorithm itself refuses any surplus hash
_LISTS = (list, tuple)


def root_from_inclusion_proof(leaf_hash: bytes, *, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` leads to from leaf ``index`` of a tree of ``size`` leaves.

    Raises :class:`~tlog.InclusionNotProven` when the proof cannot be one for that index and size.
    """
    # One expression, and each proof hash checked in the loop: this runs for every inclusion check.
    if not (type(leaf_hash) is bytes and len(leaf_hash) == HASH_SIZE and type(index) is int
            and type(size) is int and 0 <= index < size < MAX_SIZE and type(proof) in _LISTS):
        raise InclusionNotProven(_inclusion_input_problem(leaf_hash, index, size))
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if type(p) is not bytes or len(p) != HASH_SIZE:
            raise InclusionNotProven("proof is not a list of 32-byte hashes")
        if sn == 0:
            raise InclusionNotProven(f"proof has {len(proof)} hashes, more than the path")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InclusionNotProven(f"proof has {len(proof)} hashes, fewer than the path")
    return r


def verify_inclusion(leaf_hash: bytes, *, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that the leaf with ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves with ``root``.

    Raises :class:`~tlog.InclusionNotProven` otherwise.
    """
    if type(root) is not bytes or len(root) != HASH_SIZE:
        raise InclusionNotProven("root is not a 32-byte hash")
    if root_from_inclusion_proof(leaf_hash, index=index, size=size, proof=proof) != root:
        raise InclusionNotProven(f"proof for leaf {index} does not lead to the root of size {size}")


def verify_consistency(*, old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> None:
    """Check that the tree (``new_size``, ``new_root``) extends the tree (``old_size``, ``old_root``).

    Any tree extends the empty tree, whose root must be :data:`~tlog.EMPTY_ROOT`; a tree
    extends itself only with an empty proof and equal roots. Raises
    :class:`~tlog.ConsistencyNotProven` otherwise.
    """
    _check_consistency_input(old_size, new_size, old_root, new_root, proof)
    if old_size == 0 or old_size == new_size:
        if proof:
            raise ConsistencyNotProven(f"proof from {old_size} to {new_size} must be empty")
        if old_size == 0 and old_root != EMPTY_ROOT:
            raise ConsistencyNotProven("the root of size 0 is not the empty tree's")
        if old_size == new_size and old_root != new_root:
            raise ConsistencyNotProven(f"two different roots for size {old_size}")
        return
    old, new = _consistency_roots(old_size, new_size, old_root, proof)
    if old != old_root:
        raise ConsistencyNotProven(f"proof does not lead to the root of size {old_size}")
    if new != new_root:
        raise ConsistencyNotProven(f"proof does not lead to the root of size {new_size}")


def _consistency_roots(old_size: int, new_size: int, old_root: bytes,
                       proof: Sequence[bytes]) -> tuple[bytes, bytes]:
    """RFC 9162 §2.1.4.2 steps 1-7 for 0 < old_size < new_size: the two roots the proof leads to."""
    if not proof:
        raise ConsistencyNotProven(f"proof from {old_size} to {new_size} cannot be empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ConsistencyNotProven(f"proof has {len(proof)} hashes, more than it needs")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ConsistencyNotProven(f"proof has {len(proof)} hashes, fewer than it needs")
    return fr, sr


def _inclusion_input_problem(leaf_hash: object, index: object, size: object) -> str:
    if not _is_hash(leaf_hash):
        return "leaf hash is not a 32-byte hash"
    if not (_is_size(index) and _is_size(size)):
        return f"index {index!r} or size {size!r} is not a uint64"
    if index >= size:
        return f"no leaf {index} in a tree of {size} leaves"
    return "proof is not a list or tuple of hashes"


def _check_consistency_input(old_size: object, new_size: object, old_root: object, new_root: object,
                             proof: object) -> None:
    if not (_is_hash(old_root) and _is_hash(new_root)):
        raise ConsistencyNotProven("a root is not a 32-byte hash")
    if not (_is_size(old_size) and _is_size(new_size)):
        raise ConsistencyNotProven(f"size {old_size!r} or {new_size!r} is not a uint64")
    if old_size > new_size:
        raise ConsistencyNotProven(f"size {old_size} is larger than {new_size}: a log only grows")
    if not isinstance(proof, list | tuple) or len(proof) > _MAX_PROOF or not _are_hashes(proof):
        raise ConsistencyNotProven(f"proof is not a list of at most {_MAX_PROOF} 32-byte hashes")


def _are_hashes(proof: Sequence[object]) -> bool:
    return all(type(p) is bytes and len(p) == HASH_SIZE for p in cast(Sequence[bytes], proof))
