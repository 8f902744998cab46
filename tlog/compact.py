"""Compact ranges: the roots of the perfect subtrees that cover a log's leaves, left to right.

A log of ``size`` leaves is covered by one perfect subtree per set bit of ``size``, largest
first, so a compact range holds at most 64 hashes. Appending a leaf merges equal-sized
subtrees (O(log n) hashes, one on average) and the root of the current size folds the range
from the right (at most 63 hashes). A perfect subtree is named by ``(level, index)``: it
covers leaves ``[index·2^level, (index+1)·2^level)``; :meth:`CompactRange.extend_nodes`
returns each one as it completes, so a store can keep them and serve proofs in O(log n)
(see :mod:`tlog.proofs`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tlog._errors import MalformedRange
from tlog.hashing import EMPTY_ROOT, HASH_SIZE, _is_hash, _is_size, node_hash


@dataclass(frozen=True, slots=True)
class Node:
    """The hash of the perfect subtree at ``level`` (leaves are level 0) and ``index``."""

    level: int
    index: int
    digest: bytes


@dataclass(frozen=True)
class CompactRange:
    """The perfect-subtree roots covering leaves ``[0, size)``, largest subtree first."""

    size: int = 0
    nodes: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        if not _is_size(self.size):
            raise MalformedRange(f"size {self.size!r} is not a tree size")
        if type(self.nodes) is not tuple or len(self.nodes) != self.size.bit_count():
            raise MalformedRange(f"a range of size {self.size} has {self.size.bit_count()} nodes")
        if not all(_is_hash(node) for node in self.nodes):
            raise MalformedRange("every node is a 32-byte hash")

    def root(self) -> bytes:
        """MTH of leaves ``[0, size)``; :data:`~tlog.hashing.EMPTY_ROOT` when empty."""
        if not self.nodes:
            return EMPTY_ROOT
        root = self.nodes[-1]
        for node in reversed(self.nodes[:-1]):
            root = node_hash(node, root)
        return root

    def append(self, leaf_hash: bytes) -> CompactRange:
        """The range with one more leaf."""
        return self.extend((leaf_hash,))

    def extend(self, leaf_hashes: Iterable[bytes]) -> CompactRange:
        """The range with ``leaf_hashes`` appended, in order."""
        size, stack = self.size, list(self.nodes)
        for leaf in leaf_hashes:
            if type(leaf) is not bytes or len(leaf) != HASH_SIZE:
                raise MalformedRange(f"leaf {size} is not a 32-byte hash")
            stack.append(leaf)
            size += 1
            merges = size
            while not merges & 1:  # one merge per trailing zero bit of the new size
                right = stack.pop()
                stack[-1] = node_hash(stack[-1], right)
                merges >>= 1
        return CompactRange(size, tuple(stack))

    def extend_nodes(self, leaf_hashes: Iterable[bytes]) -> tuple[CompactRange, tuple[Node, ...]]:
        """Like :meth:`extend`, and every perfect subtree completed on the way, leaves included.

        Nodes come in the order they complete: a leaf, then the subtrees it closes, lowest first.
        """
        size, stack, done = self.size, list(self.nodes), []
        for leaf in leaf_hashes:
            if not _is_hash(leaf):
                raise MalformedRange(f"leaf {size} is not a 32-byte hash")
            done.append(Node(0, size, leaf))
            stack.append(leaf)
            size += 1
            level, merges = 0, size
            while not merges & 1:
                right = stack.pop()
                stack[-1] = node_hash(stack[-1], right)
                level, merges = level + 1, merges >> 1
                done.append(Node(level, (size >> level) - 1, stack[-1]))
        return CompactRange(size, tuple(stack)), tuple(done)


def root_hash(leaf_hashes: Iterable[bytes]) -> bytes:
    """MTH of the given leaf hashes (RFC 9162 §2.1.1), in O(n) time and O(log n) memory."""
    return CompactRange().extend(leaf_hashes).root()
