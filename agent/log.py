"""The agent's local, append-only log of every operation attempt and its result.

An attempt is durable (fsynced) before anything runs, and the session's last sequence
number advances in the same transaction, so a replay can never slip between the check
and the record. Rows cannot be updated or deleted (triggers refuse it). Every failure
to write raises :class:`~agent.errors.LogUnavailable`: the caller must then refuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent.errors import LogUnavailable
from agent.sqlite import Database

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
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL,
    updated_at REAL NOT NULL
);
"""

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
    """The log at ``path``. Blocking: call through ``asyncio.to_thread``."""

    def __init__(self, path: Path, *, busy_timeout: float = 2.0) -> None:
        self._db = Database(path, _SCHEMA, error=LogUnavailable, busy_timeout=busy_timeout)

    def last_seq(self, session_id: str) -> int | None:
        rows = self._db.query("SELECT last_seq FROM sessions WHERE session_id = ?", (session_id,))
        return int(rows[0][0]) if rows else None

    def record_attempt(self, attempt: Attempt) -> int:
        """Append ``attempt`` durably and return its index; allowed ones advance the seq."""
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO entries (at, kind, session_id, seq, grant_id, case_id, engineer, "
                "operation, params_json, outcome, reason, detail, operation_digest, envelope) "
                "VALUES (?, 'attempt', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (attempt.at, attempt.session_id, attempt.seq, attempt.grant_id, attempt.case_id,
                 attempt.engineer, attempt.operation, attempt.params_json, attempt.outcome,
                 attempt.reason, attempt.detail, attempt.operation_digest, attempt.envelope))
            if attempt.outcome == "allowed" and attempt.session_id and attempt.seq is not None:
                conn.execute(
                    "INSERT INTO sessions (session_id, last_seq, updated_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (session_id) DO UPDATE SET last_seq = excluded.last_seq, "
                    "updated_at = excluded.updated_at",
                    (attempt.session_id, attempt.seq, attempt.at))
            index = cursor.lastrowid
        assert index is not None
        return index

    def record_result(self, result: Result) -> int:
        """Append the result of attempt ``result.attempt_id`` durably; return its index."""
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO entries (at, kind, attempt_id, outcome, detail, result_digest, "
                "duration_ms) VALUES (?, 'result', ?, ?, ?, ?, ?)",
                (result.at, result.attempt_id, result.outcome, result.detail,
                 result.result_digest, result.duration_ms))
            index = cursor.lastrowid
        assert index is not None
        return index

    def entries(self, *, after: int = 0, limit: int = 1000) -> list[Entry]:
        """Rows with an index above ``after``, oldest first."""
        rows = self._db.query(
            f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE id > ? ORDER BY id LIMIT ?",  # noqa: S608
            (after, limit))
        return [Entry(*row) for row in rows]

    def close(self) -> None:
        self._db.close()
