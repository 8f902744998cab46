"""The store on real databases (SQLite in tmp_path and the local PostgreSQL)."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.engine import Connection

import permissions as p
from controller.errors import AlreadyExists, DeploymentExists, EnrollmentRefused, StoreConflict
from controller.setup import init_deployment
from controller.store import (
    Store,
    cases,
    directory,
    driver,
    grants,
    migrate,
    requests,
    sessions,
    tokens,
)
from controller.store.records import (
    AgentRecord,
    Case,
    ConsentEntry,
    Customer,
    GrantRecord,
    JoinTokenRecord,
    RequestRecord,
    Session,
)
from controller.store.schema import metadata
from controller.sweeper import sweep_once
from tests.integration.controller._support import TD, migrate_down

T0 = 1_800_000_000.0


def _seed(conn: Connection) -> None:
    """A customer, an agent and an open case C-0001."""
    directory.add_customer(conn, Customer("acme", "Acme", dt.date(2020, 1, 1),
                                          dt.date(2099, 12, 31), T0))
    directory.save_agent(conn, AgentRecord("web-1", "acme", "127.0.0.1:7501", b"k", "sha256:k",
                                           T0, None))
    cases.add_case(conn, Case(cases.next_case_id(conn), "acme", "slow", "open", "alice",
                              "admin", T0, None, ""))


def _request(conn: Connection, request_id: str, created_at: float) -> RequestRecord:
    key = ec.generate_private_key(ec.SECP256R1())
    envelope = p.request_access(key, request_id=request_id, case_id="C-0001", agent_id="web-1",
                                engineer="alice", scopes=["diag.read"], duration_seconds=60,
                                reason="disk full", now=int(created_at))
    record = RequestRecord(request_id, "C-0001", "web-1", "alice",
                           p.key_id(key.public_key()), ("diag.read",), 60, "disk full",
                           "pending", created_at, None, envelope)
    requests.add_request(conn, record)
    return record


def _grant(conn: Connection, request: RequestRecord, grant_id: str, not_after: int) -> None:
    grants.add_grant(conn, GrantRecord(
        grant_id, request.request_id, "C-0001", "web-1", "alice", request.engineer_key_id,
        ("diag.read",), int(T0), not_after, "sha256:a", request.envelope, T0, None, None))
    requests.set_status(conn, request.request_id, "approved", grant_id=grant_id)


def test_migrations_match_the_schema(store: Store) -> None:
    assert migrate.current_revision(store) == migrate.head_revision()
    migrate.upgrade(store)  # idempotent
    diff = store.read_sync(lambda c: compare_metadata(
        MigrationContext.configure(c, opts={"compare_type": True}), metadata))
    assert diff == []


def test_case_ids_increase(store: Store) -> None:
    store.write_sync(_seed)
    assert store.write_sync(cases.next_case_id) == "C-0002"
    assert store.write_sync(cases.next_case_id) == "C-0003"


def test_a_failed_transaction_leaves_nothing_behind(store: Store) -> None:
    def half(conn: Connection) -> None:
        _seed(conn)
        raise AlreadyExists("boom")

    with pytest.raises(AlreadyExists):
        store.write_sync(half)
    assert store.read_sync(directory.list_customers) == []
    assert store.write_sync(cases.next_case_id) == "C-0001"


def test_foreign_keys_are_enforced(store: Store) -> None:
    orphan = AgentRecord("web-9", "nobody", "h:1", b"k", "sha256:k", T0, None)
    with pytest.raises(StoreConflict):
        store.write_sync(directory.save_agent, orphan)


def test_tokens_are_single_use_and_expire(store: Store) -> None:
    store.write_sync(_seed)
    for secret, expires in (("s1", T0 + 60), ("s2", T0 + 60)):
        store.write_sync(tokens.add_token, JoinTokenRecord(
            tokens.secret_hash(secret), "agent", "web-2", "acme", T0, expires, None))
    assert store.write_sync(tokens.consume_token, "s1", T0 + 1).subject == "web-2"
    with pytest.raises(EnrollmentRefused, match="already used"):
        store.write_sync(tokens.consume_token, "s1", T0 + 2)
    with pytest.raises(EnrollmentRefused, match="expired"):
        store.write_sync(tokens.consume_token, "s2", T0 + 60)
    with pytest.raises(EnrollmentRefused, match="unknown"):
        store.write_sync(tokens.consume_token, "nope", T0)


def test_a_use_rolled_back_keeps_the_token(store: Store) -> None:
    store.write_sync(_seed)
    store.write_sync(tokens.add_token, JoinTokenRecord(
        tokens.secret_hash("s"), "engineer", "alice", None, T0, T0 + 60, None))

    def consume_then_fail(conn: Connection) -> None:
        tokens.consume_token(conn, "s", T0)
        raise StoreConflict("certificate could not be recorded")

    with pytest.raises(StoreConflict):
        store.write_sync(consume_then_fail)
    assert store.write_sync(tokens.consume_token, "s", T0 + 1).used_at == T0 + 1


def test_envelopes_and_consent_round_trip(store: Store) -> None:
    store.write_sync(_seed)
    record = store.write_sync(_request, "R-1", T0)
    with pytest.raises(AlreadyExists):
        store.write_sync(_request, "R-1", T0)
    assert store.read_sync(requests.get_request, "R-1") == record
    entry = ConsentEntry(None, T0, "requested", "R-1", None, "C-0001", "web-1", "alice",
                         "disk full", ("diag.read",), record.envelope)
    first = store.write_sync(requests.append_consent, entry)
    second = store.write_sync(requests.append_consent, entry)
    assert second > first
    found = store.read_sync(requests.consent_entries, case_id="C-0001")
    assert [e.entry_id for e in found] == [first, second]
    assert found[0].envelope == record.envelope and found[0].scopes == ("diag.read",)


def test_sweep_expires_grants_and_stale_requests_once(store: Store) -> None:
    store.write_sync(_seed)
    granted = store.write_sync(_request, "R-1", T0)
    store.write_sync(_grant, granted, "G-1", int(T0) + 100)
    store.write_sync(_request, "R-2", T0)
    store.write_sync(sessions.add_session, Session("S-000000000001", "alice", "C-0001",
                                                   "web-1", "G-1", T0, None, None))
    assert store.write_sync(sweep_once, T0 + 99).grants == ()
    swept = store.write_sync(sweep_once, T0 + 100)
    assert (swept.grants, swept.requests, swept.sessions_closed) == (("G-1",), (), 1)
    late = store.write_sync(sweep_once, T0 + 24 * 3600 + 1)
    assert (late.grants, late.requests) == ((), ("R-2",))
    kinds = [(e.kind, e.request_id) for e in store.read_sync(requests.consent_entries)]
    assert kinds == [("expired", "R-1"), ("expired", "R-2")]
    session = store.read_sync(sessions.get_session, "S-000000000001")
    assert session is not None and session.end_reason == "expired"
    assert [r.status for r in store.read_sync(requests.list_requests, newest_first=False)] == [
        "expired", "expired"]


def test_approver_keys_are_replaced_on_each_report(store: Store) -> None:
    store.write_sync(_seed)
    store.write_sync(directory.replace_approver_keys, "web-1", {"a": b"1", "b": b"2"}, T0)
    store.write_sync(directory.replace_approver_keys, "web-1", {"c": b"3"}, T0 + 1)
    assert store.read_sync(directory.get_approver_keys, "web-1") == {"c": b"3"}


async def test_async_writes_after_failures_keep_working(store: Store) -> None:
    def half(conn: Connection) -> None:
        _seed(conn)
        raise AlreadyExists("boom")

    with pytest.raises(AlreadyExists):
        await store.write(half)
    orphan = AgentRecord("web-9", "nobody", "h:1", b"k", "sha256:k", T0, None)
    with pytest.raises(StoreConflict):  # a database error: the next write gets a new connection
        await store.write(directory.save_agent, orphan)
    await store.write(_seed)
    assert [c.customer_id for c in await store.read(directory.list_customers)] == ["acme"]
    assert await store.write(cases.next_case_id) == "C-0002"


async def test_a_driver_statement_that_fails_rolls_back_its_own_write_alone(
        store: Store) -> None:
    """Statements run at the driver (controller.store.driver) fail like Core ones: the
    write's error is StoreConflict, it leaves nothing, and the others commit (on SQLite
    several of these writes share one group commit, each in its own savepoint)."""
    await store.write(_seed)
    add = ("INSERT INTO audit_session_heads (session_id, leaf_index, leaf_hash) "
           "VALUES (?, ?, ?)")

    def write(conn: Connection, n: int) -> int:
        driver.execute(conn, add, (f"S-{n}", n, bytes(32)))
        if n % 2:
            driver.executemany(conn, add, [(f"S-{n}-x", n, bytes(32)), (f"S-{n}", n, bytes(32))])
        return n

    outcomes = await asyncio.gather(*(store.write(write, n) for n in range(12)),
                                    return_exceptions=True)
    assert [o if isinstance(o, int) else type(o) for o in outcomes] == \
        [n if n % 2 == 0 else StoreConflict for n in range(12)]
    stored = store.read_sync(lambda c: driver.rows(
        c, "SELECT session_id FROM audit_session_heads ORDER BY leaf_index"))
    assert stored == [(f"S-{n}",) for n in range(0, 12, 2)]
    assert await store.write(cases.next_case_id) == "C-0002"  # the store goes on writing


async def test_concurrent_async_writes_all_commit(store: Store) -> None:
    await store.write(_seed)
    ids = await asyncio.gather(*(store.write(cases.next_case_id) for _ in range(40)))
    assert sorted(ids) == [f"C-{n:04d}" for n in range(2, 42)]


def test_sqlite_writes_queue_in_one_thread_instead_of_sleeping_on_the_lock(
        tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path}/c.db")
    try:
        migrate.upgrade(store)
        threads = asyncio.run(_writer_threads(store))
    finally:
        store.close()
    assert len(threads) == 1


async def _writer_threads(store: Store) -> set[str]:
    def name(_: Connection) -> str:
        return threading.current_thread().name

    return set(await asyncio.gather(*(store.write(name) for _ in range(20))))


def test_sqlite_is_durable_and_strict(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path}/c.db")
    try:
        pragmas = store.read_sync(lambda c: [c.exec_driver_sql(f"PRAGMA {name}").scalar()
                                             for name in ("journal_mode", "synchronous",
                                                          "foreign_keys")])
    finally:
        store.close()
    assert pragmas == ["wal", 2, 1]  # 2 = FULL


@pytest.mark.postgres
def test_init_refuses_a_database_that_holds_a_deployment(postgres_url: str,
                                                         tmp_path: Path) -> None:
    try:
        init_deployment(tmp_path / "one", TD, database_url=postgres_url)
        with pytest.raises(DeploymentExists, match="database already holds a deployment"):
            init_deployment(tmp_path / "two", TD, database_url=postgres_url)
        assert not (tmp_path / "two" / "ca.key").exists()
    finally:
        migrate_down(postgres_url)
