"""Health of the customer's configured data sources (``diag.database``, scope ``diag.read``).

``name`` (required) is one of the ``[[diag.data_sources]]`` of agent.toml (see
:mod:`agent.diag.policy`); engineers never give hosts, paths or credentials. The result::

    {name, engine, reachable, error?, version, size_bytes, latency_seconds}

``latency_seconds`` is the time to connect and answer ``SELECT 1``; ``version`` and
``size_bytes`` are null when the source is unreachable. PostgreSQL adds
``long_running_queries`` (statements running for more than 5 s, our own connection
excluded: ``pid``, ``state``, ``duration_seconds``, ``query`` redacted and cut at 500
characters) and ``lock_waits`` (``pid``, ``wait_event_type``, ``wait_event``,
``duration_seconds``), both null when unreachable and at most 50 entries each.

PostgreSQL is reached with psycopg (connect timeout and statement timeout 5 s, read-only
transactions, autocommit); SQLite files are opened read-only (``mode=ro``) in a worker
thread. A failure is a result with ``reachable`` false and ``error``; credentials never
appear in results or errors.
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from agent.diag.params import ParamReader, Params
from agent.diag.policy import DataSource, DiagConfig
from agent.redact import MASK, redact_line

TIMEOUT_SECONDS = 5
LONG_RUNNING_SECONDS = 5
QUERY_CHARS = 500
MAX_ROWS = 50
# A form redact_line does not know: ``PASSWORD 'x'`` of CREATE/ALTER ROLE (quoted or
# dollar-quoted).
_SQL_SECRET = re.compile(r"(\bpassword\s+)(E?'(?:[^']|'')*'|\$(\w*)\$.*?\$\3\$)",
                         re.IGNORECASE | re.DOTALL)

# Constant text (5 s, 50 rows): nothing from outside is ever put into SQL.
_LONG_RUNNING = """
SELECT pid, state, EXTRACT(EPOCH FROM clock_timestamp() - query_start)::float8, query
FROM pg_stat_activity
WHERE pid <> pg_backend_pid() AND state IS DISTINCT FROM 'idle' AND query_start IS NOT NULL
  AND query_start < clock_timestamp() - interval '5 seconds'
ORDER BY query_start LIMIT 50
"""
_LOCK_WAITS = """
SELECT pid, wait_event_type, wait_event,
       EXTRACT(EPOCH FROM clock_timestamp() - COALESCE(query_start, state_change))::float8
FROM pg_stat_activity
WHERE pid <> pg_backend_pid() AND wait_event_type = 'Lock'
ORDER BY query_start LIMIT 50
"""


@dataclass(frozen=True)
class DatabaseQuery:
    source: DataSource


def parse_database(params: Params, diag: DiagConfig) -> DatabaseQuery:
    reader = ParamReader("diag.database", params, {"name"})
    name = reader.text("name", max_length=64)
    source = diag.data_source(name)
    if source is None:
        reader.fail(f"name {name!r} is not a data source of [[diag.data_sources]] "
                    "in agent.toml")
    return DatabaseQuery(source)


async def database(query: DatabaseQuery) -> dict[str, Any]:
    """Check the data source; failures are results with ``error``, never exceptions."""
    source = query.source
    result: dict[str, Any] = {"name": source.name, "engine": source.engine,
                              "reachable": False, "version": None, "size_bytes": None,
                              "latency_seconds": None}
    if source.engine == "postgresql":
        result |= {"long_running_queries": None, "lock_waits": None}
    try:
        async with asyncio.timeout(3 * TIMEOUT_SECONDS):
            if source.engine == "postgresql":
                found = await _postgresql(source)
            else:
                found = await asyncio.to_thread(_sqlite, source.path)
    except TimeoutError:
        found = {"error": f"timed out after {3 * TIMEOUT_SECONDS} s"}
    except Exception as exc:  # any driver failure is a result
        found = {"error": _describe(exc, source)}
    return result | found


def _describe(exc: BaseException, source: DataSource) -> str:
    """The error's text without credentials: the password, if configured, never shows."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if source.password:
        text = text.replace(source.password, MASK)
    text, _ = redact_line(text)
    return text[:QUERY_CHARS]


def redact_query(query: str) -> str:
    """``query`` with secrets hidden, cut at 500 characters (after redaction)."""
    text, _ = redact_line(" ".join(query.split()))
    text = _SQL_SECRET.sub(lambda m: m.group(1) + MASK, text)
    return text[:QUERY_CHARS]


async def _postgresql(source: DataSource) -> dict[str, Any]:
    import psycopg  # imported here: agent.diag stays light to import

    started = time.monotonic()
    conn = await psycopg.AsyncConnection.connect(
        host=source.host, port=source.port, dbname=source.database, user=source.user,
        password=source.password or None, connect_timeout=TIMEOUT_SECONDS,
        application_name="rmaint-agent diag", autocommit=True,
        options=f"-c statement_timeout={TIMEOUT_SECONDS * 1000}"
                " -c default_transaction_read_only=on")
    async with conn:
        cur = conn.cursor()
        await cur.execute("SELECT 1")
        await cur.fetchone()
        latency = time.monotonic() - started
        await cur.execute("SELECT current_setting('server_version'),"
                          " pg_database_size(current_database())")
        row = await cur.fetchone()
        version, size = row if row is not None else (None, None)
        await cur.execute(_LONG_RUNNING)
        long_running = [{"pid": pid, "state": state, "duration_seconds": round(duration, 3),
                         "query": redact_query(text or "")}
                        for pid, state, duration, text in await cur.fetchall()]
        await cur.execute(_LOCK_WAITS)
        lock_waits = [{"pid": pid, "wait_event_type": kind, "wait_event": event,
                       "duration_seconds": None if duration is None else round(duration, 3)}
                      for pid, kind, event, duration in await cur.fetchall()]
    return {"reachable": True, "version": version, "size_bytes": size,
            "latency_seconds": round(latency, 6), "long_running_queries": long_running,
            "lock_waits": lock_waits}


def _sqlite(path: str) -> dict[str, Any]:
    started = time.monotonic()
    uri = f"file:{urllib.parse.quote(path)}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=TIMEOUT_SECONDS, isolation_level=None,
                           check_same_thread=False)
    try:
        conn.execute("PRAGMA schema_version").fetchone()  # reads the header: is it SQLite?
        latency = time.monotonic() - started
        (version,) = conn.execute("SELECT sqlite_version()").fetchone()
    finally:
        conn.close()
    return {"reachable": True, "version": version, "size_bytes": os.stat(path).st_size,
            "latency_seconds": round(latency, 6)}
