"""The tamper-evident log kernel (``tlog``) against bare hashlib SHA-256 of the same bytes.

Three measurements, each printed with the issue's target and the ratio to raw hashlib in the
same run (best of several interleaved repeats, so that both sides see the same machine load):

- full verification: verify a signed checkpoint, then recompute the root of all N records
  (leaf hash each, fold into a compact range) and compare. Peer: ``sha256(record)`` per record.
  Target >= 100,000 events/s.
- inclusion-proof checks in a log of a million events: leaf hash of the record, RFC 9162
  §2.1.3.2 verification of its audit path against the checkpoint root. Peer: the same hashing
  (the record, then one 65-byte node per proof hash) as bare hashlib calls, the floor for any
  verifier in Python. Target >= 50,000 checks/s.
- the size of one event's proof in a log of a million events. Target <= 1 KB.

Pure CPU, no files and no network; about half a minute on the 2-core machine.
Run with ``.venv/bin/python -m bench.tlog_bench``.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import random
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric import ed25519

import tlog

RECORD_SIZE = 500  # bytes, the size of a session event record in ../shared/ANCHORS.md
VERIFY_RECORDS = 200_000
LOG_SIZE = 1_000_000
CHECKS = 4_000
REPEATS = 3
ORIGIN = "rmaint.example/controller"


def record(i: int) -> bytes:
    """Deterministic RECORD_SIZE-byte record number ``i``."""
    return ((i.to_bytes(8, "big") + b"event-record-") * (RECORD_SIZE // 21 + 1))[:RECORD_SIZE]


def best_seconds(*runs: Callable[[], object]) -> list[float]:
    """Best wall time of each callable over REPEATS interleaved rounds."""
    best = [float("inf")] * len(runs)
    for _ in range(REPEATS):
        for i, run in enumerate(runs):
            gc.collect()
            start = time.perf_counter()
            run()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def full_verification(signer: tlog.NoteSigner) -> bool:
    records = [record(i) for i in range(VERIFY_RECORDS)]
    cp = tlog.Checkpoint(ORIGIN, len(records), tlog.root_hash(tlog.leaf_hash(r) for r in records))
    signed = tlog.sign_checkpoint(cp, [signer])
    leaf_hash, sha256 = tlog.leaf_hash, hashlib.sha256

    def verify() -> None:
        head = tlog.open_checkpoint(signed, [signer.verifier], origin=ORIGIN).checkpoint
        if tlog.CompactRange().extend(map(leaf_hash, records)).root() != head.root_hash:
            raise SystemExit("full verification failed")

    def raw() -> None:
        for r in records:
            sha256(r).digest()

    ours, peer = best_seconds(verify, raw)
    rate, peer_rate = len(records) / ours, len(records) / peer
    print(f"full verification of {len(records):,} records of {RECORD_SIZE} B (signed checkpoint, root)")
    print(f"  tlog             {rate:>12,.0f} events/s   {ours * 1000:8.1f} ms")
    print(f"  raw hashlib      {peer_rate:>12,.0f} records/s  {peer * 1000:8.1f} ms")
    print(f"  ratio tlog / raw hashlib: {rate / peer_rate:.2f}x the rate "
          f"(target >= 100,000 events/s: {verdict(rate >= 100_000)})")
    return rate >= 100_000


def million_event_tree() -> tuple[list[list[bytes]], bytes]:
    """Every perfect-subtree hash of a log of LOG_SIZE events, by level, and its root."""
    levels = [[tlog.leaf_hash(record(i)) for i in range(LOG_SIZE)]]
    node_hash = tlog.node_hash
    while len(levels[-1]) > 1:
        below = levels[-1]
        levels.append([node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)])
    root = tlog.root_at(lambda level, index: levels[level][index], LOG_SIZE)
    if root != tlog.CompactRange().extend(levels[0]).root():
        raise SystemExit("the two ways of computing the root disagree")
    return levels, root


def inclusion_checks(levels: list[list[bytes]], root: bytes) -> bool:
    read: tlog.NodeReader = lambda level, index: levels[level][index]  # noqa: E731
    picks = random.Random(5).sample(range(LOG_SIZE), CHECKS)  # noqa: S311  # which events, not a secret
    cases = [(i, record(i), tlog.inclusion_proof_from(read, i, LOG_SIZE)) for i in picks]
    verify, leaf_hash, sha256 = tlog.verify_inclusion, tlog.leaf_hash, hashlib.sha256

    def check() -> None:
        for i, data, proof in cases:
            verify(leaf_hash(data), index=i, size=LOG_SIZE, proof=proof, root=root)

    def raw() -> None:
        for _, data, proof in cases:
            digest = sha256(data).digest()
            for p in proof:
                digest = sha256(b"\x01" + p + digest).digest()

    ours, peer = best_seconds(check, raw)
    rate, peer_rate = CHECKS / ours, CHECKS / peer
    hashes = sum(len(proof) for _, _, proof in cases) / CHECKS
    print(f"inclusion checks in a log of {LOG_SIZE:,} events ({CHECKS:,} random events, "
          f"{hashes:.1f} proof hashes on average)")
    print(f"  tlog             {rate:>12,.0f} checks/s   {ours / CHECKS * 1e6:8.1f} us each")
    print(f"  raw hashlib      {peer_rate:>12,.0f} checks/s   {peer / CHECKS * 1e6:8.1f} us each")
    print(f"  ratio tlog / raw hashlib: {rate / peer_rate:.2f}x the rate "
          f"(target >= 50,000 checks/s: {verdict(rate >= 50_000)})")
    return rate >= 50_000


def proof_sizes(levels: list[list[bytes]]) -> bool:
    read: tlog.NodeReader = lambda level, index: levels[level][index]  # noqa: E731
    proofs = [tlog.inclusion_proof_from(read, i, LOG_SIZE) for i in (0, 123_456, 524_287, LOG_SIZE - 1)]
    longest = max(proofs, key=len)
    size = len(longest) * tlog.HASH_SIZE
    text = sum(len(base64.b64encode(p)) + 1 for p in longest)  # one base64 line per hash
    consistency = [tlog.consistency_proof_from(read, old, LOG_SIZE) for old in (1, 500_000, LOG_SIZE - 1)]
    print(f"proof sizes in a log of {LOG_SIZE:,} events")
    print(f"  inclusion proof of one event: {len(longest)} hashes = {size} B raw, {text} B as base64 "
          f"lines (target <= 1 KB: {verdict(size <= 1024)})")
    print("  consistency proofs to size 1,000,000 from 1 / 500,000 / 999,999: "
          + " / ".join(f"{len(p) * tlog.HASH_SIZE} B" for p in consistency))
    return size <= 1024


def machine_hash_speed() -> None:
    """Context: the cost of one bare hashlib call here, to set beside ../shared/ANCHORS.md."""
    record500, node = record(0), bytes(65)
    sha256 = hashlib.sha256

    def hash_records() -> None:
        for _ in range(100_000):
            sha256(record500).digest()

    def hash_nodes() -> None:
        for _ in range(100_000):
            sha256(node).digest()

    per_record, per_node = (t / 100_000 * 1e6 for t in best_seconds(hash_records, hash_nodes))
    print(f"this machine: hashlib SHA-256 of a {RECORD_SIZE} B record {per_record:.2f} us, of a 65 B node "
          f"{per_node:.2f} us (ANCHORS.md measured 0.47 us for a 500 B record)")


def main() -> int:
    started = time.perf_counter()
    machine_hash_speed()
    signer = tlog.NoteSigner(ORIGIN, ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
    full_verification(signer)
    levels, root = million_event_tree()
    inclusion_checks(levels, root)
    proof_sizes(levels)
    print(f"(bench took {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
