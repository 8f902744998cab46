"""RFC 9162 §2.1 hashing: leaf and interior node hashes, and the tree split rule.

``leaf_hash(d) = SHA-256(0x00 ‖ d)`` and ``node_hash(l, r) = SHA-256(0x01 ‖ l ‖ r)``; the two
prefixes keep a leaf from ever being taken for an interior node (second preimage).
"""

from __future__ import annotations

import hashlib
from typing import TypeGuard

HASH_SIZE = 32
"""Bytes in every hash of the tree (SHA-256)."""

MAX_SIZE = 1 << 64
"""Sizes and indices are RFC 9162 uint64 values: everything is below this bound."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH({}): the root hash of the empty tree."""

# Copying a hash state that has absorbed the prefix is cheaper than a new hashlib object
# (OpenSSL 3 looks the algorithm up on every new context) and saves concatenating.
_LEAF_PREFIX = hashlib.sha256(b"\x00")
_NODE_PREFIX = hashlib.sha256(b"\x01")


def leaf_hash(data: bytes) -> bytes:
    """The leaf hash of one record: SHA-256(0x00 ‖ data)."""
    h = _LEAF_PREFIX.copy()
    h.update(data)
    return h.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node: SHA-256(0x01 ‖ left ‖ right)."""
    h = _NODE_PREFIX.copy()
    h.update(left)
    h.update(right)
    return h.digest()


def split_point(size: int) -> int:
    """The largest power of two smaller than ``size`` (which must be at least 2): RFC 9162's k."""
    return 1 << ((size - 1).bit_length() - 1)


def _is_hash(value: object) -> TypeGuard[bytes]:
    """Whether ``value`` is bytes of exactly :data:`HASH_SIZE`."""
    return type(value) is bytes and len(value) == HASH_SIZE


def _is_size(value: object) -> TypeGuard[int]:
    """Whether ``value`` is a plain int in the uint64 range (``bool`` is not a size)."""
    return type(value) is int and 0 <= value < MAX_SIZE
