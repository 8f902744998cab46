"""The agent log's Merkle tree: every entry a leaf, checkpoints signed, tampering found."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from agent.errors import LogUnavailable
from agent.ledger import RECORD_COLUMNS, Ledger, entry_record
from agent.log import Attempt, OperationLog, Result
from tlog import NoteSigner, leaf_hash, root_hash, verify_inclusion

ORIGIN = "web-1.agent.example.test/log"


def _attempt(seq: int, outcome: str = "allowed") -> Attempt:
    return Attempt(at=1_800_000_000.0 + seq, outcome=outcome, reason="", detail="",
                   operation_digest=f"sha256:{seq:064x}", envelope=b"envelope-%d" % seq,
                   session_id="S-1", seq=seq, grant_id="G-1", case_id="C-1",
                   engineer="alice", operation="diag.system", params_json="{}")


def _fill(log: OperationLog, operations: int) -> None:
    for seq in range(1, operations + 1):
        index = log.record_attempt(_attempt(seq))
        log.record_result(Result(attempt_id=index, at=1_800_000_000.5 + seq, outcome="ok",
                                 result_digest=f"sha256:{seq:064x}", duration_ms=1.5))


def _raw(path: Path) -> sqlite3.Connection:
    """A connection that can do what the agent never does: edit the log behind its back."""
    conn = sqlite3.connect(path, isolation_level=None)
    for trigger in ("entries_append_only_update", "entries_append_only_delete",
                    "tree_nodes_append_only_update", "tree_nodes_append_only_delete"):
        conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    return conn


@pytest.fixture
def signer() -> NoteSigner:
    return NoteSigner(ORIGIN, ed25519.Ed25519PrivateKey.generate())


@pytest.fixture
def log(tmp_path: Path) -> OperationLog:
    return OperationLog(tmp_path / "log.db")


def _leaves(path: Path) -> list[bytes]:
    conn = sqlite3.connect(path)
    rows = conn.execute(f"SELECT {', '.join(RECORD_COLUMNS)} FROM entries ORDER BY id")  # noqa: S608
    return [leaf_hash(entry_record(row)) for row in rows]


def test_every_entry_is_a_leaf_and_the_root_is_rfc9162(log: OperationLog, tmp_path: Path,
                                                       signer: NoteSigner) -> None:
    _fill(log, 7)
    assert log.tree_size() == 14
    head = log.checkpoint(signer, ORIGIN, now=1.0)
    assert (head.size, head.root) == (14, root_hash(_leaves(tmp_path / "log.db")))
    assert log.checkpoint(signer, ORIGIN, now=2.0) == head  # nothing new: not signed again
    verified = log.verify(signer.verifier, ORIGIN)
    assert (verified.entries, verified.checkpoint) == (14, head)


def test_an_inclusion_proof_verifies_against_the_checkpoint(log: OperationLog,
                                                            signer: NoteSigner) -> None:
    _fill(log, 20)
    head = log.checkpoint(signer, ORIGIN, now=1.0)
    tree = Ledger()
    with log._db.transaction() as conn:  # what an auditor's export would read
        record, path = tree.inclusion(conn, 17, head.size)
    verify_inclusion(leaf_hash(record), index=16, size=head.size, proof=path, root=head.root)


def test_a_modified_entry_is_pinpointed(log: OperationLog, tmp_path: Path,
                                        signer: NoteSigner) -> None:
    _fill(log, 5)
    log.checkpoint(signer, ORIGIN, now=1.0)
    _raw(tmp_path / "log.db").execute("UPDATE entries SET outcome = 'denied' WHERE id = 3")
    with pytest.raises(LogUnavailable, match=r"entry 3 \(attempt\) differs from its leaf"):
        log.verify(signer.verifier, ORIGIN)


def test_a_deleted_entry_is_pinpointed(log: OperationLog, tmp_path: Path,
                                       signer: NoteSigner) -> None:
    _fill(log, 5)
    log.checkpoint(signer, ORIGIN, now=1.0)
    _raw(tmp_path / "log.db").execute("DELETE FROM entries WHERE id = 4")
    with pytest.raises(LogUnavailable, match="entry 4 is missing"):
        log.verify(signer.verifier, ORIGIN)


def test_truncation_below_the_checkpoint_is_found(log: OperationLog, tmp_path: Path,
                                                  signer: NoteSigner) -> None:
    _fill(log, 5)
    log.checkpoint(signer, ORIGIN, now=1.0)
    raw = _raw(tmp_path / "log.db")
    raw.execute("DELETE FROM entries WHERE id > 6")
    raw.execute("DELETE FROM tree_nodes")
    with pytest.raises(LogUnavailable, match="fewer than the 10 of its last checkpoint"):
        log.verify(signer.verifier, ORIGIN)


def test_a_rewritten_history_with_its_tree_rebuilt_fails_the_checkpoint(
        log: OperationLog, tmp_path: Path, signer: NoteSigner) -> None:
    _fill(log, 3)
    log.checkpoint(signer, ORIGIN, now=1.0)
    raw = _raw(tmp_path / "log.db")
    raw.execute("UPDATE entries SET detail = 'rewritten' WHERE id = 2")
    raw.execute("DELETE FROM tree_nodes")  # rebuilt by the next sync from the edited rows
    fresh = OperationLog(tmp_path / "log.db")
    assert fresh.tree_size() == 0
    fresh.record_attempt(_attempt(99))
    with pytest.raises(LogUnavailable, match="the first 6 entries do not match"):
        fresh.verify(signer.verifier, ORIGIN)
    with pytest.raises(LogUnavailable, match="no longer extends the checkpoint of size 6"):
        fresh.checkpoint(signer, ORIGIN, now=2.0)


def test_a_checkpoint_by_another_key_does_not_verify(log: OperationLog, tmp_path: Path,
                                                     signer: NoteSigner) -> None:
    _fill(log, 2)
    log.checkpoint(NoteSigner(ORIGIN, ed25519.Ed25519PrivateKey.generate()), ORIGIN, now=1.0)
    with pytest.raises(LogUnavailable, match="checkpoint of size 4 does not verify"):
        log.verify(signer.verifier, ORIGIN)


def test_a_log_from_before_the_tree_gets_its_leaves(tmp_path: Path, signer: NoteSigner) -> None:
    path = tmp_path / "log.db"
    old = OperationLog(path)
    _fill(old, 4)
    old.close()
    _raw(path).execute("DROP TABLE tree_nodes")  # as written before the tree existed
    log = OperationLog(path)
    log.record_attempt(_attempt(10))
    assert log.tree_size() == 9
    head = log.checkpoint(signer, ORIGIN, now=1.0)
    assert head.root == root_hash(_leaves(path))


def test_a_rolled_back_transaction_leaves_the_tree_consistent(
        log: OperationLog, tmp_path: Path, signer: NoteSigner) -> None:
    _fill(log, 2)
    with pytest.raises(RuntimeError), log._db.transaction() as conn:
        conn.execute("INSERT INTO entries (at, kind, outcome) VALUES (1, 'attempt', 'denied')")
        log._tree.sync(conn)  # the tree in memory moves ahead of what will be stored
        raise RuntimeError("abandon the transaction")
    _fill(log, 1)
    head = log.checkpoint(signer, ORIGIN, now=1.0)
    assert (head.size, head.root) == (6, root_hash(_leaves(tmp_path / "log.db")))
    assert log.verify(signer.verifier, ORIGIN).entries == 6


async def test_the_checkpointer_signs_only_when_the_log_grew(log: OperationLog,
                                                             signer: NoteSigner) -> None:
    from agent.checkpoints import Checkpointer

    checkpointer = Checkpointer(log, signer, ORIGIN, clock=lambda: 5.0)
    first = await checkpointer.tick()
    assert first is not None and first.size == 0
    assert await checkpointer.tick() is None
    _fill(log, 2)
    grown = await checkpointer.tick()
    assert grown is not None and grown.size == 4
    assert log.verify(signer.verifier, ORIGIN).checkpoint == grown
