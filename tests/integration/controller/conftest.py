"""Fixtures: a real store on SQLite (tmp_path) and on the local PostgreSQL, and a real
controller started with serve() on port 0.

PostgreSQL: one uniquely named database per test session on 127.0.0.1:5432 (user
postgres), dropped at the end; each test leaves it migrated down to empty. If the server
is unreachable the PostgreSQL variants are skipped, unless CI=true: then they fail.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from controller.server import serve
from controller.setup import init_deployment
from controller.store import Store, migrate
from tests.integration.controller._support import TD, Deployment, FakeClock, migrate_down

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database on the local PostgreSQL for this test session."""
    name = f"rmaint_test_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is unreachable and CI=true: {exc}")
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is unreachable: {exc}")
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                          .format(sql.Identifier(name)))


def _database_url(request: pytest.FixtureRequest) -> str | None:
    """None for the default SQLite store in the home, else the PostgreSQL URL."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A migrated store on each backend; emptied (migrated down) afterwards."""
    url = _database_url(request) or f"sqlite:///{tmp_path}/controller.db"
    opened = Store.open(url)
    try:
        migrate.upgrade(opened)
        yield opened
        migrate.downgrade(opened)
    finally:
        opened.close()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """For tests that run init_deployment themselves: None (SQLite) or a PostgreSQL URL."""
    url = _database_url(request)
    try:
        yield url
    finally:
        if url is not None:
            migrate_down(url)


@pytest.fixture
async def deployment(database_url: str | None, tmp_path: Path) -> AsyncIterator[Deployment]:
    """A deployment initialised in tmp_path and its controller serving on free ports."""
    home = tmp_path / "home"
    init_deployment(home, TD, listen="127.0.0.1:0", enroll_listen="127.0.0.1:0",
                    database_url=database_url)
    clock = FakeClock(time.time())
    running = await serve(home, clock=clock, sweep_interval=3600, log_to_stderr=False)
    deployed = Deployment(home, running, clock, tmp_path / "people")
    try:
        yield deployed
    finally:
        await deployed.close()
        await running.stop()
