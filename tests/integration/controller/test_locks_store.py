"""Locks in the store, on SQLite and PostgreSQL: versions only grow, rows are never
deleted, and each agent gets only the locks that concern it."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.engine import Connection

from controller.audit.records import decode
from controller.store import Store, auditlog, cases, directory
from controller.store import locks as store_locks
from controller.store.records import AgentRecord, Case, Customer
from permissions.locks import Lock, Subject

T0 = 1_800_000_000.0
KEY = "sha256:" + "cd" * 32


def _seed(store: Store) -> None:
    def seed(conn: Connection) -> None:
        for customer, agent in (("acme", "web-1"), ("beta", "db-1")):
            directory.add_customer(conn, Customer(customer, customer, dt.date(2020, 1, 1),
                                                  dt.date(2099, 12, 31), T0))
            directory.save_agent(conn, AgentRecord(agent, customer, "", b"k",
                                                   "sha256:k", T0, None))
            cases.add_case(conn, Case(cases.next_case_id(conn), customer, "t", "open",
                                      "alice", "admin", T0, None, ""))
    store.write_sync(seed)


def test_versions_grow_and_removed_locks_stay_on_record(store: Store) -> None:
    assert store.read_sync(store_locks.current_version) == 0
    first = store.write_sync(store_locks.add_lock, Lock("L-1", "case:C-0001", "r", "admin", T0))
    second = store.write_sync(store_locks.add_lock,
                              Lock("L-2", "agent:web-1", "r", "admin", T0, expires_at=T0 + 60))
    assert (first, second) == (1, 2)
    assert store.write_sync(store_locks.remove_lock, "L-1", "root", T0 + 1) == 3
    assert store.write_sync(store_locks.remove_lock, "L-1", "root", T0 + 2) is None  # once
    assert [r.lock.lock_id for r in store.read_sync(store_locks.list_locks, T0 + 2)] == ["L-2"]
    everything = store.read_sync(store_locks.list_locks, T0 + 61, include_inactive=True)
    assert [(r.lock.lock_id, r.status(T0 + 61), r.removed_by) for r in everything] == \
        [("L-1", "removed", "root"), ("L-2", "expired", None)]
    assert store.read_sync(store_locks.lock_on, Subject(agent_id="web-1"), T0 + 59) is not None
    assert store.read_sync(store_locks.lock_on, Subject(agent_id="web-1"), T0 + 60) is None
    assert store.read_sync(store_locks.lock_on, Subject(case_id="C-0001"), T0 + 2) is None
    # Each change is in the tamper-evident log; a case lock shows in the case's evidence.
    records = [decode(leaf.record) for leaf in store.read_sync(auditlog.leaves)]
    assert [(r.kind, r.details["lock_id"], r.actor) for r in records] == [
        ("lock.added", "L-1", "admin"), ("lock.added", "L-2", "admin"),
        ("lock.removed", "L-1", "root")]
    case_records = store.read_sync(auditlog.leaves, case_id="C-0001")
    assert [decode(leaf.record).kind for leaf in case_records] == ["lock.added", "lock.removed"]


@pytest.mark.parametrize(("agent", "expected"), [
    ("web-1", ["L-a", "L-c", "L-k"]), ("db-1", ["L-k"]),
])
def test_each_agent_gets_the_locks_that_concern_it(store: Store, agent: str,
                                                   expected: list[str]) -> None:
    _seed(store)
    for lock_id, target in (("L-a", "agent:web-1"), ("L-b", "agent:db-9"),
                            ("L-c", "case:C-0001"), ("L-k", f"engineer-key:{KEY}")):
        store.write_sync(store_locks.add_lock, Lock(lock_id, target, "r", "admin", T0))
    version, found = store.read_sync(store_locks.locks_for_agent, agent, T0)
    assert version == 4
    assert sorted(lock.lock_id for lock in found) == expected
