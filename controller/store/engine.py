"""The database adapter: one engine, transactions in worker threads, errors wrapped.

SQLite runs in WAL mode with ``synchronous=FULL`` (a commit survives power loss) and
foreign keys on. SQLAlchemy emits BEGIN itself so reads are repeatable, and write
transactions start with ``BEGIN IMMEDIATE``: they take the write lock up front instead
of failing half-way when two writers meet. SQLite admits one writer at a time and makes
a second one sleep in its busy handler (1, 2, 5, 10 ms and more) until the first commits,
so a :class:`Store` on SQLite runs its write transactions one after another in one
thread of its own, on one connection it keeps open: they queue and start the moment the
previous one commits, without a pool checkout each. PostgreSQL needs none of this.

Group commit (SQLite): the writer thread takes every async write queued so far and runs
them in one transaction, each inside a savepoint of its own, so one that fails rolls back
alone, as if it had been its own transaction; one durable commit (one fsync) then
acknowledges them all. If that commit fails, every write of the group fails: none was
acknowledged, so none can be missing later. PostgreSQL groups concurrent commits' WAL
flushes by itself.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, Engine, make_url

from controller.errors import StoreConflict, StoreUnavailable

P = ParamSpec("P")
T = TypeVar("T")
_WRITE = "rmaint_write"
_SQLITE_PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL",
                   "PRAGMA foreign_keys=ON")
_SQLITE_BUSY_SECONDS = 30.0
_MAX_GROUP = 1000  # writes committed together at most
_Job = tuple[Callable[[Connection], Any], "Future[Any]"]


def create_engine(url: str) -> Engine:
    """An engine for ``url`` (sqlite or postgresql+psycopg) with the settings above."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, connect_args={"timeout": _SQLITE_BUSY_SECONDS})
        _configure_sqlite(engine)
        return engine
    return sa.create_engine(parsed, pool_pre_ping=True)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Leave BEGIN to SQLAlchemy (below); the driver's own would skip it for SELECTs.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            for pragma in _SQLITE_PRAGMAS:
                cursor.execute(pragma)
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(_WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Wrap the driver's failures in the controller's store errors."""
    try:
        yield
    except exc.IntegrityError as error:
        raise StoreConflict(f"constraint violated: {_first_line(error.orig)}") from error
    except (exc.OperationalError, exc.InterfaceError) as error:
        raise StoreUnavailable(f"database unavailable: {_first_line(error.orig)}") from error


def _first_line(error: BaseException | None) -> str:
    """Drivers add hints on further lines; messages here are one line."""
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


class Store:
    """Runs functions ``fn(connection, ...)`` in one transaction each.

    A function that raises rolls its transaction back, so nothing half-written remains.
    The async forms run the (blocking) driver in a worker thread.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._busy = 0
        self._idle = threading.Condition()
        serial = engine.dialect.name == "sqlite"
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="rmaint-store-write") \
            if serial else None
        # Also orders write_sync callers in other threads (migrations, tests).
        self._write_lock: contextlib.AbstractContextManager[Any] = \
            threading.RLock() if serial else contextlib.nullcontext()
        self._held: Connection | None = None  # the writer thread's connection
        self._jobs: collections.deque[_Job] = collections.deque()
        self._jobs_lock = threading.Lock()
        self._draining = False

    @classmethod
    def open(cls, url: str) -> Store:
        return cls(create_engine(url))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def write_sync(self, fn: Callable[Concatenate[Connection, P], T],
                   *args: P.args, **kwargs: P.kwargs) -> T:
        return self._run(True, fn, *args, **kwargs)

    def read_sync(self, fn: Callable[Concatenate[Connection, P], T],
                  *args: P.args, **kwargs: P.kwargs) -> T:
        return self._run(False, fn, *args, **kwargs)

    async def write(self, fn: Callable[Concatenate[Connection, P], T],
                    *args: P.args, **kwargs: P.kwargs) -> T:
        if self._writer is None:
            return await asyncio.to_thread(lambda: self._run(True, fn, *args, **kwargs))
        context = contextvars.copy_context()  # as asyncio.to_thread does
        future: Future[T] = Future()
        self._enqueue((lambda conn: context.run(fn, conn, *args, **kwargs), future))
        return await asyncio.wrap_future(future)

    def _enqueue(self, job: _Job) -> None:
        assert self._writer is not None
        with self._jobs_lock:
            self._jobs.append(job)
            if self._draining:
                return
            self._draining = True
        self._writer.submit(self._drain)

    def _drain(self) -> None:
        """In the writer thread: commit queued writes, a group at a time, until none is left."""
        while True:
            with self._jobs_lock:
                if not self._jobs:
                    self._draining = False
                    return
                group = [self._jobs.popleft() for _ in range(min(len(self._jobs), _MAX_GROUP))]
            outcomes = self._run_group(group) if len(group) > 1 else [self._run_alone(group[0])]
            for (_, future), (ok, value) in zip(group, outcomes, strict=True):
                _settle(future, ok, value)

    def _run_alone(self, job: _Job) -> tuple[bool, Any]:
        try:
            return True, self._run_held(job[0])
        except Exception as error:
            return False, error

    def _run_group(self, group: list[_Job]) -> list[tuple[bool, Any]]:
        """Each write in a savepoint, one commit for all; all fail if the commit fails."""
        with self._idle:
            self._busy += 1
        try:
            with self._write_lock:
                try:
                    with _translated():
                        connection = self._connection()
                        try:
                            with connection.begin():
                                return [_in_savepoint(connection, run) for run, _ in group]
                        except exc.SQLAlchemyError:
                            self._drop_held()
                            raise
                except Exception as error:
                    return [(False, error)] * len(group)
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    def _connection(self) -> Connection:
        connection = self._held
        if connection is None or connection.closed or connection.invalidated:
            connection = self._held = self.engine.connect()
            connection.execution_options(**{_WRITE: True})
        return connection

    async def read(self, fn: Callable[Concatenate[Connection, P], T],
                   *args: P.args, **kwargs: P.kwargs) -> T:
        return await asyncio.to_thread(lambda: self._run(False, fn, *args, **kwargs))

    def _run(self, write: bool, fn: Callable[Concatenate[Connection, P], T],
             *args: P.args, **kwargs: P.kwargs) -> T:
        with self._idle:
            self._busy += 1
        try:
            with (self._write_lock if write else contextlib.nullcontext()), _translated(), \
                    self.engine.connect() as connection:
                connection.execution_options(**{_WRITE: write})
                with connection.begin():
                    return fn(connection, *args, **kwargs)
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    def _run_held(self, fn: Callable[Concatenate[Connection, P], T],
                  *args: P.args, **kwargs: P.kwargs) -> T:
        """A write transaction in the writer thread, on the connection it keeps open."""
        with self._idle:
            self._busy += 1
        try:
            with self._write_lock, _translated():
                connection = self._connection()
                try:
                    with connection.begin():
                        return fn(connection, *args, **kwargs)
                except exc.SQLAlchemyError:
                    self._drop_held()  # the next transaction starts on a fresh connection
                    raise
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    def _drop_held(self) -> None:
        connection, self._held = self._held, None
        if connection is not None:
            with contextlib.suppress(exc.SQLAlchemyError):
                connection.close()

    def close(self, timeout: float = 30.0) -> None:
        """Close every pooled connection once running transactions end (or ``timeout``).

        A cancelled caller does not stop its worker thread, so transactions may still be
        running when the server stops; closing under them would leak their connections.
        """
        with self._idle:
            self._idle.wait_for(lambda: self._busy == 0, timeout)
        if self._writer is not None:
            self._writer.shutdown(wait=False)
            with self._write_lock:
                self._drop_held()
        self.engine.dispose()


def _settle(future: Future[Any], ok: bool, value: Any) -> None:
    """Hand a write's outcome to its waiter. A waiter that was cancelled meanwhile (its
    RPC ended) has cancelled the future too: the write ran all the same, and setting a
    result now would raise here and stop the writer for every later write."""
    if not future.set_running_or_notify_cancel():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _in_savepoint(connection: Connection,
                  run: Callable[[Connection], Any]) -> tuple[bool, Any]:
    """Run one write of a group; a failure rolls back its savepoint only."""
    savepoint = connection.begin_nested()
    try:
        with _translated():
            value = run(connection)
    except Exception as error:
        savepoint.rollback()
        return False, error
    savepoint.commit()
    return True, value
