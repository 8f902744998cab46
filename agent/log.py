"""The agent's local, append-only log of every operation attempt and its result.

An attempt is durable (fsynced) before anything runs. Every attempt whose engineer
signature verified (allowed or denied) advances its session's last sequence number in the
same transaction, keyed by (grant, session), and only ever upwards: an allowed attempt
whose number is not above the stored one is recorded as a denied replay instead, so a
replay can never slip between the check and the record, nor a late commit move the
number back. Rows cannot be updated or deleted (triggers refuse it). Every failure to
write raises :class:`~agent.errors.LogUnavailable`: the caller must then refuse.

The log remembers the sequence numbers it has read or committed (:meth:`known_last_seq`),
so the dispatcher's check before the write needs no read; the check inside the write
transaction stays the one that counts, so a number remembered too low can only turn an
allowed attempt into a recorded replay, never let a replay through.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ParamSpec, TypeVar

from agent import ledger
from agent.errors import LogUnavailable
from agent.sqlite import Database
from permissions import Reason
from tlog import NoteSigner, NoteVerifier

P = ParamSpec("P")
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('attempt', 'result')),
    attempt_id INTEGER REFERENCES entries(id),
    session_id TEXT, seq INTEGER, grant_id TEXT, case_id TEXT, engineer TEXT,
    operation TEXT, params_json TEXT,
    outcome TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '', detail TEXT NOT NULL DEFAULT '',
    operation_digest TEXT, result_digest TEXT, duration_ms REAL,
    envelope BLOB
);
CREATE TRIGGER IF NOT EXISTS entries_append_only_update BEFORE UPDATE ON entries
BEGIN SELECT RAISE(ABORT, 'the operation log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS entries_append_only_delete BEFORE DELETE ON entries
BEGIN SELECT RAISE(ABORT, 'the operation log is append-only'); END;
CREATE TABLE IF NOT EXISTS session_seqs (
    grant_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    last_seq INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (grant_id, session_id)
);
"""

# Logs written before session_seqs kept the last allowed seq per session id alone in
# "sessions". The entries hold every verified attempt, so the new table is rebuilt from
# them (denied verified attempts count too, as they do from now on), then "sessions" goes.
_MIGRATE_SESSIONS = """
INSERT INTO session_seqs (grant_id, session_id, last_seq, updated_at)
SELECT grant_id, session_id, MAX(seq), MAX(at) FROM entries
WHERE kind = 'attempt' AND grant_id IS NOT NULL AND session_id IS NOT NULL
  AND seq IS NOT NULL
GROUP BY grant_id, session_id
ON CONFLICT (grant_id, session_id) DO UPDATE SET last_seq = excluded.last_seq
WHERE excluded.last_seq > session_seqs.last_seq
"""

_HAS_SESSIONS = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sessions'"

_ADVANCE = (
    "INSERT INTO session_seqs (grant_id, session_id, last_seq, updated_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (grant_id, session_id) DO UPDATE SET last_seq = excluded.last_seq, "
    "updated_at = excluded.updated_at WHERE excluded.last_seq > session_seqs.last_seq"
)

_LAST_SEQ = "SELECT last_seq FROM session_seqs WHERE grant_id = ? AND session_id = ?"

_INSERT_ATTEMPT = (
    "INSERT INTO entries (at, kind, session_id, seq, grant_id, case_id, engineer, "
    "operation, params_json, outcome, reason, detail, operation_digest, envelope) "
    "VALUES (?, 'attempt', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

_INSERT_RESULT = (
    "INSERT INTO entries (at, kind, attempt_id, outcome, detail, result_digest, duration_ms) "
    "VALUES (?, 'result', ?, ?, ?, ?, ?)"
)

SEQS_KEPT = 65536  # sessions whose last sequence number is remembered; then start over

_ENTRY_COLUMNS = (
    "id, at, kind, attempt_id, session_id, seq, grant_id, case_id, engineer, operation, "
    "params_json, outcome, reason, detail, operation_digest, result_digest, duration_ms"
)


@dataclass(frozen=True)
class Attempt:
    """An operation as received and the agent's decision on it.

    ``outcome`` is "allowed" or "denied"; ``reason`` is empty when allowed. Fields of
    the operation are None when it could not be verified.
    """

    at: float
    outcome: str
    reason: str
    detail: str
    operation_digest: str
    envelope: bytes
    session_id: str | None = None
    seq: int | None = None
    grant_id: str | None = None
    case_id: str | None = None
    engineer: str | None = None
    operation: str | None = None
    params_json: str | None = None


@dataclass(frozen=True)
class Recorded:
    """An attempt as it was recorded, and its index.

    ``attempt`` differs from the one handed in only when an allowed attempt turned out,
    inside the write transaction, to repeat or go below its session's sequence number:
    it was then recorded as denied with the replay reason.
    """

    index: int
    attempt: Attempt


@dataclass(frozen=True)
class Result:
    """What became of an allowed attempt: ok, invalid, error or cancelled."""

    attempt_id: int
    at: float
    outcome: str
    detail: str = ""
    result_digest: str | None = None
    duration_ms: float | None = None


@dataclass(frozen=True)
class Entry:
    """One log row as read back."""

    id: int
    at: float
    kind: str
    attempt_id: int | None
    session_id: str | None
    seq: int | None
    grant_id: str | None
    case_id: str | None
    engineer: str | None
    operation: str | None
    params_json: str | None
    outcome: str
    reason: str
    detail: str
    operation_digest: str | None
    result_digest: str | None
    duration_ms: float | None


class OperationLog:
    """The log at ``path``.

    Methods block and may be called from any thread; on the event loop, hand them to the
    log's own thread with :meth:`submit`.
    """

    def __init__(self, path: Path, *, busy_timeout: float = 2.0) -> None:
        self._db = Database(path, _SCHEMA + ledger.SCHEMA, error=LogUnavailable,
                            busy_timeout=busy_timeout)
        self._tree = ledger.Ledger()
        self._seqs: dict[tuple[str, str], int | None] = {}
        self._seqs_lock = threading.Lock()
        try:
            self._migrate()
        except BaseException:
            self._db.close()
            raise

    def _migrate(self) -> None:
        if not self._db.query(_HAS_SESSIONS):
            return
        with self._db.transaction() as conn:
            if conn.execute(_HAS_SESSIONS).fetchone() is not None:
                conn.execute(_MIGRATE_SESSIONS)
                conn.execute("DROP TABLE sessions")

    def submit(self, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> asyncio.Future[T]:
        """``call(*args, **kwargs)`` started in the log's own thread (see Database.submit)."""
        return self._db.submit(call, *args, **kwargs)

    def last_seq(self, grant_id: str, session_id: str) -> int | None:
        """The highest sequence number seen verified in this session of this grant."""
        rows = self._db.query(_LAST_SEQ, (grant_id, session_id))
        value = int(rows[0][0]) if rows else None
        with self._seqs_lock:
            # A commit that happened meanwhile has remembered its own, higher number.
            if len(self._seqs) >= SEQS_KEPT:
                self._seqs.clear()
            self._seqs.setdefault((grant_id, session_id), value)
        return value

    def known_last_seq(self, grant_id: str, session_id: str) -> tuple[bool, int | None]:
        """``(True, last_seq)`` if the log remembers it, ``(False, None)`` otherwise.

        Never reads the database. The value can only be lower than the stored one if
        another connection wrote this log, which the write transaction then catches.
        """
        with self._seqs_lock:
            key = (grant_id, session_id)
            if key in self._seqs:
                return True, self._seqs[key]
        return False, None

    def record_attempt(self, attempt: Attempt) -> int:
        """Append ``attempt`` durably and return its index; see :meth:`record_decision`."""
        return self.record_decision(attempt).index

    def record_decision(self, attempt: Attempt) -> Recorded:
        """Append ``attempt`` durably, advancing its session's sequence number if verified.

        The sequence number only moves up, checked in the same transaction: an allowed
        attempt whose number does not advance it is recorded (and returned) as denied.
        """
        advanced = False
        with self._db.transaction() as conn:
            if (attempt.grant_id is not None and attempt.session_id is not None
                    and attempt.seq is not None):
                advanced = conn.execute(_ADVANCE, (attempt.grant_id, attempt.session_id,
                                                   attempt.seq, attempt.at)).rowcount == 1
                if not advanced and attempt.outcome == "allowed":
                    attempt = replace(attempt, outcome="denied", reason=str(Reason.REPLAY),
                                      detail=f"seq {attempt.seq} does not advance the session")
            index = conn.execute(
                _INSERT_ATTEMPT,
                (attempt.at, attempt.session_id, attempt.seq, attempt.grant_id, attempt.case_id,
                 attempt.engineer, attempt.operation, attempt.params_json, attempt.outcome,
                 attempt.reason, attempt.detail, attempt.operation_digest, attempt.envelope),
            ).lastrowid
            self._tree.sync(conn)  # the entry and its leaf commit together
        if advanced:  # committed: remember the number the session has now
            assert attempt.grant_id is not None and attempt.session_id is not None
            self._remember(attempt.grant_id, attempt.session_id, attempt.seq)
        assert index is not None
        return Recorded(index, attempt)

    def _remember(self, grant_id: str, session_id: str, seq: int | None) -> None:
        assert seq is not None
        with self._seqs_lock:
            key = (grant_id, session_id)
            known = self._seqs.get(key)
            if known is None or seq > known:
                if len(self._seqs) >= SEQS_KEPT:
                    self._seqs.clear()
                self._seqs[key] = seq

    def record_result(self, result: Result) -> int:
        """Append the result of attempt ``result.attempt_id`` durably; return its index."""
        with self._db.transaction() as conn:
            index = conn.execute(
                _INSERT_RESULT,
                (result.at, result.attempt_id, result.outcome, result.detail,
                 result.result_digest, result.duration_ms)).lastrowid
            self._tree.sync(conn)
        assert index is not None
        return index

    def entries(self, *, after: int = 0, limit: int = 1000) -> list[Entry]:
        """Rows with an index above ``after``, oldest first."""
        rows = self._db.query(
            f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE id > ? ORDER BY id LIMIT ?",  # noqa: S608
            (after, limit))
        return [Entry(*row) for row in rows]

    def tree_size(self) -> int:
        """Leaves in the log's tree (every entry, once its transaction committed)."""
        return int(self._db.query(ledger.SIZE)[0][0])

    def checkpoint(self, signer: NoteSigner, origin: str, now: float) -> ledger.Head:
        """Sign the log's tree as it is now, unless its last checkpoint covers it already."""
        with self._db.transaction() as conn:
            try:
                return self._tree.checkpoint(conn, signer, origin, now)
            except ledger.LedgerError as exc:
                raise LogUnavailable(str(exc)) from exc

    def verify(self, verifier: NoteVerifier, origin: str) -> ledger.Verified:
        """Recompute the tree from the entries; LogUnavailable names the first mismatch."""
        with self._db.transaction() as conn:  # one consistent view
            try:
                return self._tree.verify(conn, verifier, origin)
            except ledger.LedgerError as exc:
                raise LogUnavailable(str(exc)) from exc

    def close(self) -> None:
        self._db.close()
