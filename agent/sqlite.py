"""A durable SQLite connection shared by the agent's state and its operation log.

Every commit is fsynced (``synchronous=FULL``, WAL). The connection stays open for the
life of the :class:`Database`; a lock serialises the threads that use it, so its blocking
methods may be called from any thread. Callers on the event loop hand work to the
database's own thread with :meth:`Database.submit` (one thread per database, made on
first use, in which its write transactions queue and run one after another) and await it
with :func:`to_the_end`. SQL text is kept constant, so the connection's statement cache
(128 statements) prepares each statement once. Any sqlite3 error surfaces as the
``error`` class given at construction.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from agent.errors import AgentError
from pki.files import reason

Row = tuple[Any, ...]
P = ParamSpec("P")
T = TypeVar("T")


class Database:
    """One connection to ``path``; ``schema`` (idempotent DDL) is applied on open."""

    def __init__(self, path: Path, schema: str, *, error: type[AgentError],
                 busy_timeout: float = 5.0) -> None:
        self._error = error
        self._lock = threading.Lock()
        self._thread: ThreadPoolExecutor | None = None
        self._thread_name = f"rmagent-db-{path.stem}"
        try:
            path.touch(mode=0o600, exist_ok=True)  # SQLite gives -wal/-shm files the same mode
            self._conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None,
                                         check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise error(f"cannot open {path}: {reason(exc, with_file=False)}") from exc
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.executescript(schema)
        except sqlite3.Error as exc:
            self._conn.close()
            raise error(f"cannot prepare {path}: {exc}") from exc

    def submit(self, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> asyncio.Future[T]:
        """``call(*args, **kwargs)`` queued now to this database's own thread.

        Calls run there one after another, in the order submitted. Await the future with
        :func:`to_the_end` when it writes: a thread cannot be stopped.
        """
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix=self._thread_name)
        loop = asyncio.get_running_loop()
        if kwargs:
            return loop.run_in_executor(self._thread, lambda: call(*args, **kwargs))
        return loop.run_in_executor(self._thread, call, *args)

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
                return self._conn.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise self._error(f"read failed: {exc}") from exc

    def close(self) -> None:
        """Let submitted calls finish, then close the connection."""
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.shutdown(wait=True)
        with self._lock:
            self._conn.close()

    def _rollback(self) -> None:
        try:
            self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # no transaction left to undo (SQLite already rolled it back)


async def to_the_end(work: asyncio.Future[T]) -> T:
    """The outcome of ``work``, awaited until it is done even if cancelled meanwhile.

    A thread cannot be stopped: abandoning its future would let a write commit later,
    unseen. So a cancellation is held (the future itself is never cancelled) until
    ``work`` is done, then passed on; ``work`` is then done and its outcome readable.
    """
    cancelled = False
    while not work.done():
        try:
            await asyncio.wait((work,))  # never cancels ``work`` itself
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return work.result()
