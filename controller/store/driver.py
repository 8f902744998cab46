"""Statements run at the database driver, inside the caller's transaction.

Every relayed operation writes two audit log records, each several small statements. Run
through SQLAlchemy Core, such a statement costs tens of microseconds of Python before the
driver sees it, several times what the database then takes. The log's hot path runs its
fixed statements here instead: plain SQL written with ``?`` placeholders (rendered once
per paramstyle), on the transaction's own driver connection.

A driver error is raised as the matching SQLAlchemy error (IntegrityError,
OperationalError, ...), so the store translates it as any other. Unlike Core, nothing here
notices a lost connection: the store drops its held connection when a transaction fails
(a failed write inside a group commit only rolls back its savepoint), and a pooled one
whose rollback fails is invalidated by the pool.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import exc
from sqlalchemy.engine import Connection


def rows(conn: Connection, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """The rows a query ``sql`` returns for positional ``params``."""
    def fetch(cursor: Any, text: str) -> list[tuple[Any, ...]]:
        cursor.execute(text, tuple(params))
        return [tuple(row) for row in cursor.fetchall()]
    result: list[tuple[Any, ...]] = _run(conn, sql, fetch)
    return result


def execute(conn: Connection, sql: str, params: Sequence[Any] = ()) -> int:
    """Run the statement ``sql`` once with positional ``params``; the rows it changed."""
    def run(cursor: Any, text: str) -> int:
        cursor.execute(text, tuple(params))
        return int(cursor.rowcount)
    result: int = _run(conn, sql, run)
    return result


def executemany(conn: Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """Run the statement ``sql`` once per row of ``rows``."""
    if rows:
        _run(conn, sql, lambda cursor, text: cursor.executemany(text, [tuple(r) for r in rows]))


def placeholders(count: int) -> str:
    """``?, ?, ...``: ``count`` placeholders for an IN list or a VALUES row."""
    return ", ".join(["?"] * count)


def _run(conn: Connection, sql: str, call: Callable[[Any, str], Any]) -> Any:
    dialect = conn.dialect
    text = _rendered(sql, dialect.paramstyle)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        return call(cursor, text)
    except dialect.loaded_dbapi.Error as error:
        raise exc.DBAPIError.instance(text, None, error, dialect.loaded_dbapi.Error) from error
    finally:
        cursor.close()


@functools.lru_cache(maxsize=256)
def _rendered(sql: str, paramstyle: str) -> str:
    """``sql`` with its ``?`` placeholders in the driver's style (none hold a literal ?)."""
    if paramstyle == "qmark":
        return sql
    if paramstyle in ("format", "pyformat"):
        return sql.replace("%", "%%").replace("?", "%s")
    raise ValueError(f"unsupported paramstyle {paramstyle!r}")
