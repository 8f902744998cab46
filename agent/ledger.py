"""The agent log's Merkle tree (RFC 9162) and its signed checkpoints.

Every row of the operation log (:mod:`agent.log`) is a leaf, in the order of its index:
entry ``n`` is leaf ``n - 1``. The leaf is the SHA-256 leaf hash of the entry's canonical
record (:func:`entry_record`), which holds every column and the SHA-256 of the signed
envelope. The tree is kept as the perfect subtrees that complete as leaves arrive
(``tree_nodes``), appended in the same transaction as the entry, so an entry never exists
without its leaf. Proofs then cost O(log n) reads.

Checkpoints are C2SP signed notes (origin, size, root) signed with the agent's Ed25519 log
key (``log.key`` in its home, 0600). Signing refuses a size below the last signed one;
:meth:`Ledger.verify` recomputes every leaf from the entries and the root of the last
checkpoint, and names the first entry that does not match.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from pki.files import read_ed25519_key, write_key
from tlog import (
    Checkpoint,
    CompactRange,
    NoteSigner,
    NoteVerifier,
    compact_range_at,
    consistency_proof_from,
    inclusion_proof_from,
    leaf_hash,
    open_checkpoint,
    sign_checkpoint,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS tree_nodes (
    level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS tree_nodes_append_only_update BEFORE UPDATE ON tree_nodes
BEGIN SELECT RAISE(ABORT, 'the log tree is append-only'); END;
CREATE TRIGGER IF NOT EXISTS tree_nodes_append_only_delete BEFORE DELETE ON tree_nodes
BEGIN SELECT RAISE(ABORT, 'the log tree is append-only'); END;
CREATE TABLE IF NOT EXISTS checkpoints (
    size INTEGER PRIMARY KEY, root BLOB NOT NULL, note BLOB NOT NULL, at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS witness_keys (
    id INTEGER PRIMARY KEY CHECK (id = 1), vkey TEXT NOT NULL, pinned_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS witness_cosigned (
    size INTEGER PRIMARY KEY, note BLOB NOT NULL, at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS witnessed (
    size INTEGER PRIMARY KEY, root BLOB NOT NULL, note BLOB NOT NULL, at REAL NOT NULL
);
"""
# Mutual witnessing (agent.witness): the controller's log key pinned on first use, this
# log's checkpoints as the controller cosigned them, and the controller's checkpoints this
# agent cosigned (the last one is where the next consistency proof starts).

# The columns of a record, in the order selected; "envelope" is replaced by its SHA-256.
RECORD_COLUMNS = ("id", "at", "kind", "attempt_id", "session_id", "seq", "grant_id", "case_id",
                  "engineer", "operation", "params_json", "outcome", "reason", "detail",
                  "operation_digest", "result_digest", "duration_ms", "envelope")
_SELECT = f"SELECT {', '.join(RECORD_COLUMNS)} FROM entries"  # noqa: S608
SIZE = "SELECT COALESCE(MAX(idx) + 1, 0) FROM tree_nodes WHERE level = 0"
_NODE = "SELECT hash FROM tree_nodes WHERE level = ? AND idx = ?"
_INSERT_NODE = "INSERT INTO tree_nodes (level, idx, hash) VALUES (?, ?, ?)"
_LAST_CHECKPOINT = "SELECT size, root, note FROM checkpoints ORDER BY size DESC LIMIT 1"
LOG_KEY = "log.key"


class LedgerError(Exception):
    """The tree cannot be extended or does not match the log; the message says where."""


def entry_record(row: Sequence[Any]) -> bytes:
    """The canonical record of one entry row (columns in :data:`RECORD_COLUMNS` order)."""
    fields = dict(zip(RECORD_COLUMNS, row, strict=True))
    envelope = fields.pop("envelope")
    fields["envelope_sha256"] = hashlib.sha256(envelope).hexdigest() if envelope else None
    fields["v"] = 1
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


def origin_of(agent_id: str, trust_domain: str) -> str:
    """The checkpoint origin of an agent's log."""
    return f"{agent_id}.agent.{trust_domain}/log"


def load_or_create_key(home: Path) -> ed25519.Ed25519PrivateKey:
    """The agent's log key, made (0600) on first use."""
    path = home / LOG_KEY
    if path.exists():
        return read_ed25519_key(path)
    key = ed25519.Ed25519PrivateKey.generate()
    write_key(path, key)
    return key


@dataclass(frozen=True)
class Head:
    """The last signed checkpoint: its size, root and note."""

    size: int
    root: bytes
    note: bytes


@dataclass(frozen=True)
class Verified:
    entries: int
    checkpoint: Head | None


class Ledger:
    """The tree of one operation log; every method runs inside the caller's connection."""

    def __init__(self) -> None:
        self._range = CompactRange()  # as of the last sync; checked against the store

    def sync(self, conn: sqlite3.Connection) -> CompactRange:
        """Append a leaf for every entry not yet in the tree; call inside the transaction."""
        size = conn.execute(SIZE).fetchone()[0]
        if self._range.size != size:  # first use, or a rolled-back transaction
            self._range = compact_range_at(_reader(conn), size)
        rows = conn.execute(f"{_SELECT} WHERE id > ? ORDER BY id", (size,)).fetchall()
        if not rows:
            return self._range
        if rows[0][0] != size + 1 or rows[-1][0] != size + len(rows):
            raise LedgerError(f"the log's entries after {size} are not contiguous")
        grown, nodes = self._range.extend_nodes(leaf_hash(entry_record(row)) for row in rows)
        conn.executemany(_INSERT_NODE, ((n.level, n.index, n.digest) for n in nodes))
        self._range = grown
        return grown

    def checkpoint(self, conn: sqlite3.Connection, signer: NoteSigner, origin: str,
                   now: float) -> Head:
        """Sign the current tree unless the last checkpoint already covers it."""
        current = self.sync(conn)
        last = self.head(conn)
        if last is not None and last.size > current.size:
            raise LedgerError(f"the tree has {current.size} leaves, fewer than the "
                              f"{last.size} of the last checkpoint")
        if last is not None and last.size == current.size:
            if last.root != current.root():
                raise LedgerError(f"the tree of size {current.size} differs from its checkpoint")
            return last
        if last is not None and last.size and compact_range_at(
                _reader(conn), last.size).root() != last.root:
            raise LedgerError(f"the tree no longer extends the checkpoint of size {last.size}")
        note = sign_checkpoint(Checkpoint(origin, current.size, current.root()), [signer])
        conn.execute("INSERT INTO checkpoints (size, root, note, at) VALUES (?, ?, ?, ?)",
                     (current.size, current.root(), note, now))
        return Head(current.size, current.root(), note)

    def head(self, conn: sqlite3.Connection) -> Head | None:
        row = conn.execute(_LAST_CHECKPOINT).fetchone()
        return Head(int(row[0]), bytes(row[1]), bytes(row[2])) if row else None

    def inclusion(self, conn: sqlite3.Connection, index: int,
                  size: int) -> tuple[bytes, tuple[bytes, ...]]:
        """Entry ``index``'s record and its audit path in the tree of ``size`` leaves."""
        row = conn.execute(f"{_SELECT} WHERE id = ?", (index,)).fetchone()
        if row is None:
            raise LedgerError(f"no entry {index}")
        return entry_record(row), inclusion_proof_from(_reader(conn), index - 1, size)

    def consistency(self, conn: sqlite3.Connection, old: int, new: int) -> tuple[bytes, ...]:
        return consistency_proof_from(_reader(conn), old, new)

    def records(self, conn: sqlite3.Connection, after: int, limit: int) -> list[bytes]:
        """The canonical records of entries ``after + 1`` … (at most ``limit``), in order."""
        rows = conn.execute(f"{_SELECT} WHERE id > ? ORDER BY id LIMIT ?", (after, limit))
        return [entry_record(row) for row in rows]

    def root_of(self, conn: sqlite3.Connection, size: int) -> bytes:
        """The root of the first ``size`` entries, recomputed from the entries themselves."""
        rows = conn.execute(f"{_SELECT} WHERE id <= ? ORDER BY id", (size,))
        return CompactRange().extend(leaf_hash(entry_record(row)) for row in rows).root()

    def verify(self, conn: sqlite3.Connection, verifier: NoteVerifier,
               origin: str) -> Verified:
        """Recompute every leaf and the root; raise LedgerError at the first mismatch."""
        stored = {idx: bytes(h) for idx, h in conn.execute(
            "SELECT idx, hash FROM tree_nodes WHERE level = 0")}
        leaves = []
        for expected, row in enumerate(conn.execute(f"{_SELECT} ORDER BY id"), start=1):
            if row[0] != expected:
                raise LedgerError(f"entry {expected} is missing (found {row[0]} instead)")
            leaf = leaf_hash(entry_record(row))
            if expected - 1 in stored and stored[expected - 1] != leaf:
                raise LedgerError(f"entry {expected} ({row[2]}) differs from its leaf")
            leaves.append(leaf)
        head = self.head(conn)
        if head is None:
            return Verified(len(leaves), None)
        try:
            open_checkpoint(head.note, [verifier], origin=origin)
        except Exception as exc:
            raise LedgerError(f"the checkpoint of size {head.size} does not verify: {exc}") \
                from exc
        if len(leaves) < head.size:
            raise LedgerError(f"the log has {len(leaves)} entries, fewer than the {head.size} "
                              "of its last checkpoint: it was truncated")
        if CompactRange().extend(leaves[:head.size]).root() != head.root:
            raise LedgerError(f"the first {head.size} entries do not match their checkpoint")
        return Verified(len(leaves), head)


def _reader(conn: sqlite3.Connection) -> Any:
    def read(level: int, index: int) -> bytes:
        row = conn.execute(_NODE, (level, index)).fetchone()
        if row is None:
            raise LedgerError(f"tree node ({level}, {index}) is missing")
        return bytes(row[0])
    return read

