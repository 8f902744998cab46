"""Real databases for data correction: SQLite always, PostgreSQL and MariaDB when present.

Each test gets a freshly made database (PostgreSQL and MariaDB: a uniquely named one,
dropped after) holding a small shop: ``customers`` (``email`` masked) and ``orders``.
Without a server the PostgreSQL and MariaDB cases skip, except under CI=true, where they
fail. :class:`Harness` drives the operations as the dispatcher would, with a fake clock.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ed25519

import permissions as p
from agent.changes import ChangeStore
from agent.context import OperationContext
from agent.data.ops import DataOperations
from agent.data.policy import DataConfig, DataSourcePolicy, TablePolicy

ENGINES = ("sqlite", "postgresql", "mysql")
SERVERS = ENGINES[1:]
SECRET_EMAIL = "hidden-7f3a@example.test"  # noqa: S105 - a masked test value
TABLES = (TablePolicy("customers", ("id", "name", "email", "credit"), ("email",)),
          TablePolicy("orders", ("id", "customer_id", "status", "total")))
_DDL = (
    "CREATE TABLE customers (id INTEGER PRIMARY KEY, name VARCHAR(200) NOT NULL, "
    "email VARCHAR(200), credit INTEGER NOT NULL DEFAULT 0, secret VARCHAR(50))",
    "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL "
    "REFERENCES customers(id), status VARCHAR(40) NOT NULL, total NUMERIC(10,2))",
)
_ROWS = (
    "INSERT INTO customers (id, name, email, credit, secret) VALUES "  # noqa: S608 - constant
    f"(1, 'Ada', '{SECRET_EMAIL}', 10, 's1'), (2, 'Bob', 'bob@example.test', 0, 's2'), "
    "(3, 'Cy', NULL, 5, 's3')",
    "INSERT INTO orders (id, customer_id, status, total) VALUES (10, 1, 'open', 12.50), "
    "(11, 1, 'paid', 99.00), (12, 2, 'open', 1.25)",
)


def _required(what: str, exc: Exception) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is required under CI: {exc}")
    pytest.skip(f"no {what}: {exc}")


def _sqlite(tmp: Path) -> Iterator[DataSourcePolicy]:
    yield DataSourcePolicy("shop", "sqlite", TABLES, path=str(tmp / "shop.db"))


def _postgresql(_tmp: Path) -> Iterator[DataSourcePolicy]:
    try:
        admin = psycopg.connect(host="127.0.0.1", port=5432, user="postgres",
                                dbname="postgres", connect_timeout=3, autocommit=True)
    except psycopg.OperationalError as exc:
        _required("PostgreSQL at 127.0.0.1:5432", exc)
    name = f"rmaint_data_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield DataSourcePolicy("shop", "postgresql", TABLES, host="127.0.0.1", port=5432,
                                   database=name, user="postgres",
                                   password="unused")  # noqa: S106 - trust auth
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _mysql(_tmp: Path) -> Iterator[DataSourcePolicy]:
    try:
        admin = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="",
                                connect_timeout=3, autocommit=True)
    except pymysql.err.OperationalError as exc:
        _required("MariaDB at 127.0.0.1:3306", exc)
    name = f"rmaint_data_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.cursor().execute(f"CREATE DATABASE `{name}`")
        try:
            yield DataSourcePolicy("shop", "mysql", TABLES, host="127.0.0.1", port=3306,
                                   database=name, user="root", password="")
        finally:
            admin.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")


_MAKERS: dict[str, Callable[[Path], Iterator[DataSourcePolicy]]] = {
    "sqlite": _sqlite, "postgresql": _postgresql, "mysql": _mysql}


def fill(source: DataSourcePolicy) -> None:
    engine = raw_engine(source)
    with engine.begin() as conn:
        for statement in (*_DDL, *_ROWS):
            conn.exec_driver_sql(statement)
    engine.dispose()


def raw_engine(source: DataSourcePolicy) -> sa.Engine:
    """An engine of the test's own, outside the agent's code paths."""
    if source.engine == "sqlite":
        return sa.create_engine(f"sqlite:///{source.path}")
    driver = "postgresql+psycopg" if source.engine == "postgresql" else "mysql+pymysql"
    return sa.create_engine(sa.URL.create(driver, username=source.user,
                                          password=source.password or None, host=source.host,
                                          port=source.port, database=source.database),
                            poolclass=sa.pool.NullPool)


def run_to_end(runner: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    """Run an operation's runner to its end, as the dispatcher would."""
    async def go() -> dict[str, Any]:
        return await runner()
    return asyncio.run(go())


@dataclass
class Clock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Trust:
    keys: dict[str, p.PublicKey]

    def current(self) -> p.AgentTrust:
        return p.AgentTrust("web-1", self.keys)


@dataclass
class Harness:
    source: DataSourcePolicy
    home: Path
    clock: Clock = field(default_factory=Clock)
    approver: ed25519.Ed25519PrivateKey = field(default_factory=ed25519.Ed25519PrivateKey.generate)
    ctx: OperationContext = field(default_factory=lambda: OperationContext(
        agent_id="web-1", grant_id="G-1", case_id="C-1", session_id="S-1", seq=1,
        engineer="alice", engineer_key_id="sha256:" + "ab" * 32))

    def __post_init__(self) -> None:
        self.store = ChangeStore(self.home / "changes.db")
        self.trust = Trust({p.key_id(self.approver.public_key()): self.approver.public_key()})
        self.ops = self.make_ops()

    def make_ops(self, **kwargs: Any) -> DataOperations:
        return DataOperations(DataConfig((self.source,)), self.store, self.trust, self.clock,
                              **kwargs)

    def run(self, name: str, params: dict[str, Any],
            ctx: OperationContext | None = None) -> dict[str, Any]:
        prepare = getattr(self.ops, f"prepare_{name}")
        result = run_to_end(prepare(params, ctx or self.ctx))
        json.dumps(result)  # what the dispatcher sends must be JSON
        return result

    def preview(self, plan: dict[str, Any]) -> dict[str, Any]:
        return self.run("preview", {"source": "shop", "plan": plan})

    def consent(self, digest: str, *, key: ed25519.Ed25519PrivateKey | None = None,
                ctx: OperationContext | None = None, seconds: int = 600) -> None:
        ctx = ctx or self.ctx
        context = p.ChangeContext(change_digest=digest, agent_id=ctx.agent_id,
                                  case_id=ctx.case_id, grant_id=ctx.grant_id,
                                  engineer_key_id=ctx.engineer_key_id)
        consent_id = f"K-{uuid.uuid4().hex[:12]}"
        envelope = p.consent_to_change(context, key or self.approver, consent_id=consent_id,
                                       now=int(self.clock()), seconds=seconds)
        self.store.add_consent(consent_id, digest, envelope, self.clock())

    def apply(self, digest: str) -> dict[str, Any]:
        return self.run("apply", {"digest": digest})

    def rows(self, table: str) -> list[dict[str, Any]]:
        engine = raw_engine(self.source)
        with engine.connect() as conn:
            result = conn.exec_driver_sql(
                f"SELECT * FROM {table} ORDER BY id").mappings()  # noqa: S608 - test tables
            rows = [{k: str(v) if v is not None else None for k, v in r.items()}
                    for r in result]
        engine.dispose()
        return rows

    def content_hash(self) -> str:
        text = json.dumps({t: self.rows(t) for t in ("customers", "orders")}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture(params=ENGINES)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    """A harness on a filled shop database of each engine."""
    yield from _harness(request.param, tmp_path)


@pytest.fixture(params=SERVERS)
def server_harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    """A harness on each database server: another client can commit while the agent's
    transaction runs (SQLite's writer holds the whole file)."""
    yield from _harness(request.param, tmp_path)


def _harness(engine: str, tmp_path: Path) -> Iterator[Harness]:
    maker = _MAKERS[engine](tmp_path)
    source = next(maker)
    fill(source)
    h = Harness(source, tmp_path)
    try:
        yield h
    finally:
        h.store.close()
        h.ops.close()
        next(maker, None)


@pytest.fixture
def sqlite_harness(tmp_path: Path) -> Iterator[Harness]:
    source = next(_sqlite(tmp_path))
    fill(source)
    h = Harness(source, tmp_path)
    yield h
    h.store.close()
