"""diag.database against the local PostgreSQL (127.0.0.1:5432, user postgres) and SQLite.

A uniquely named database is created for the run and dropped after. Without a server the
PostgreSQL tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from agent.catalogue import build_catalogue
from agent.diag.policy import DataSource, DiagConfig

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
PASSWORD = "n0t-th3-r34l-pw"  # noqa: S105 - a test value, never valid


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _run(sources: tuple[DataSource, ...], name: str) -> dict[str, Any]:
    spec = build_catalogue(DiagConfig(data_sources=sources))["diag.database"]
    return await spec.prepare({"name": name})()


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    try:
        admin = psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres",
                                connect_timeout=3, autocommit=True)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at {PG_HOST}:{PG_PORT} is required under CI: {exc}")
        pytest.skip(f"no PostgreSQL at {PG_HOST}:{PG_PORT}: {exc}")
    name = f"rmaint_diag_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield name
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _source(db: str, **changes: Any) -> DataSource:
    fields: dict[str, Any] = {"host": PG_HOST, "port": PG_PORT, "database": db,
                              "user": PG_USER, "password": PASSWORD} | changes
    return DataSource("main", "postgresql", **fields)


async def test_postgresql_reports_version_size_and_long_running_queries(
        pg_database: str) -> None:
    import psycopg

    def sleeper() -> None:
        with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=pg_database,
                             autocommit=True) as conn:
            conn.execute("SELECT pg_sleep(8) /* password=hunter2 */")

    thread = threading.Thread(target=sleeper, daemon=True)
    thread.start()
    time.sleep(6)
    result = await _run((_source(pg_database),), "main")
    assert result["reachable"] is True and "error" not in result
    assert result["name"] == "main" and result["engine"] == "postgresql"
    assert isinstance(result["version"], str) and result["version"][0].isdigit()
    assert isinstance(result["size_bytes"], int) and result["size_bytes"] > 0
    assert 0 < result["latency_seconds"] < 5
    sleeping = [q for q in result["long_running_queries"] if "pg_sleep(8)" in q["query"]]
    assert len(sleeping) == 1, result["long_running_queries"]
    (query,) = sleeping
    assert "hunter2" not in query["query"] and "***" in query["query"]
    assert query["duration_seconds"] >= 5 and query["state"] == "active"
    assert isinstance(query["pid"], int)
    assert all("rmaint-agent" not in q["query"] for q in result["long_running_queries"])
    assert isinstance(result["lock_waits"], list)
    assert PASSWORD not in repr(result)
    thread.join(timeout=5)


@pytest.mark.parametrize("changes", [{"port": _closed_port()},
                                     {"user": "no_such_role_rmaint"},
                                     {"database": "no_such_db_rmaint"}])
async def test_postgresql_failures_are_results_without_the_password(
        pg_database: str, changes: dict[str, Any]) -> None:
    result = await _run((_source(pg_database, **changes),), "main")
    assert result["reachable"] is False and result["error"]
    assert result["version"] is None and result["size_bytes"] is None
    assert result["long_running_queries"] is None and result["lock_waits"] is None
    assert PASSWORD not in repr(result)


async def test_sqlite_is_opened_read_only(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x)")
        conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(1000)])
    conn.close()
    before = path.read_bytes()
    source = DataSource("cache", "sqlite", path=str(path))
    result = await _run((source,), "cache")
    assert result == {"name": "cache", "engine": "sqlite", "reachable": True,
                      "version": sqlite3.sqlite_version, "size_bytes": len(before),
                      "latency_seconds": result["latency_seconds"]}
    assert path.read_bytes() == before
    assert not (tmp_path / "app.db-journal").exists() and not (tmp_path / "app.db-wal").exists()


@pytest.mark.parametrize("content", [None, b"not a database at all" * 10])
async def test_sqlite_missing_or_foreign_file_is_unreachable(tmp_path: Path,
                                                             content: bytes | None) -> None:
    path = tmp_path / "odd file?.db"
    if content is not None:
        path.write_bytes(content)
    result = await _run((DataSource("cache", "sqlite", path=str(path)),), "cache")
    assert result["reachable"] is False and result["error"]
    assert result["version"] is None
    assert path.exists() == (content is not None)  # read-only: never created
