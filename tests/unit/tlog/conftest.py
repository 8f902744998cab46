from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

import tlog

VECTORS: dict[str, Any] = json.loads((Path(__file__).parent / "vectors.json").read_text())


def flip(data: bytes, bit: int = 0) -> bytes:
    """``data`` with one bit changed."""
    position = bit % (8 * len(data))
    out = bytearray(data)
    out[position // 8] ^= 1 << (position % 8)
    return bytes(out)


def leaves(count: int, salt: bytes = b"") -> list[bytes]:
    """Leaf hashes of ``count`` distinct records."""
    return [tlog.leaf_hash(salt + i.to_bytes(4, "big")) for i in range(count)]


# An independent reading of RFC 9162 §2.1.1, §2.1.3.1 and §2.1.4.1, straight from the recursive
# definitions, with hashlib only: the oracle that tlog's generators and verifiers are checked against.

def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(hashes: list[bytes]) -> bytes:
    return _ref_mth(tuple(hashes))


@functools.cache
def _ref_mth(hashes: tuple[bytes, ...]) -> bytes:
    if not hashes:
        return hashlib.sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    k = _k(len(hashes))
    return _node(_ref_mth(hashes[:k]), _ref_mth(hashes[k:]))


def ref_path(m: int, hashes: list[bytes]) -> list[bytes]:
    if len(hashes) == 1:
        return []
    k = _k(len(hashes))
    if m < k:
        return [*ref_path(m, hashes[:k]), ref_mth(hashes[k:])]
    return [*ref_path(m - k, hashes[k:]), ref_mth(hashes[:k])]


def ref_subproof(m: int, hashes: list[bytes], complete: bool) -> list[bytes]:
    n = len(hashes)
    if m == n:
        return [] if complete else [ref_mth(hashes)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, hashes[:k], complete), ref_mth(hashes[k:])]
    return [*ref_subproof(m - k, hashes[k:], False), ref_mth(hashes[:k])]


def ref_proof(m: int, hashes: list[bytes]) -> list[bytes]:
    return [] if m in (0, len(hashes)) else ref_subproof(m, hashes, True)


@pytest.fixture
def make_signer() -> Callable[[str], tlog.NoteSigner]:
    """A factory of note signers with deterministic keys, one per name."""

    def make(name: str, seed: bytes | None = None) -> tlog.NoteSigner:
        seed = seed or hashlib.sha256(name.encode()).digest()
        return tlog.NoteSigner(name, ed25519.Ed25519PrivateKey.from_private_bytes(seed))

    return make
