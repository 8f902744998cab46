"""A durable SQLite connection shared by the agent's state and its operation log.

Every commit is fsynced (``synchronous=FULL``, WAL). Methods block: callers on the
event loop use ``asyncio.to_thread``; a lock serialises threads on the one connection.
Any sqlite3 error surfaces as the ``error`` class given at construction.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agent.errors import AgentError

Row = tuple[Any, ...]


class Database:
    """One connection to ``path``; ``schema`` (idempotent DDL) is applied on open."""

    def __init__(self, path: Path, schema: str, *, error: type[AgentError],
                 busy_timeout: float = 5.0) -> None:
        self._error = error
        self._lock = threading.Lock()
        try:
            path.touch(mode=0o600, exist_ok=True)  # SQLite gives -wal/-shm files the same mode
            self._conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None,
                                         check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise error(f"cannot open {path}: {exc}") from exc
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.executescript(schema)
        except sqlite3.Error as exc:
            self._conn.close()
            raise error(f"cannot prepare {path}: {exc}") from exc

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, committed durably on exit or rolled back on any error."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._error(f"cannot begin a transaction: {exc}") from exc
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise self._error(f"write failed: {exc}") from exc
            except BaseException:
                self._rollback()
                raise

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        """Rows of one read-only statement."""
        with self._lock:
            try:
                return list(self._conn.execute(sql, args).fetchall())
            except sqlite3.Error as exc:
                raise self._error(f"read failed: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _rollback(self) -> None:
        try:
            self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # no transaction left to undo (SQLite already rolled it back)
