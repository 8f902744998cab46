"""Locks in the store, and the version of the lock set agents hold.

Every change (add, remove) takes the next value of the ``locks`` counter in the same
transaction, so the version agents compare only grows and two replicas never hand out the
same one. Rows are never deleted: a removed lock keeps who removed it and when.

The versions count within the store's *epoch* (the ``locks_epoch`` counter row), a random
id drawn again by :func:`new_epoch` whenever a controller starts: after a store is restored
from a backup its counter is older than what agents hold, and only the new epoch makes
agents take the sets it hands out.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from controller.audit.records import Event
from controller.store import auditlog, driver
from controller.store.schema import agents, cases, counters, grants, locks, principals
from permissions.locks import Lock, Subject, covering

LOCK_COUNTER = "locks"
EPOCH_COUNTER = "locks_epoch"
ACTIVE, EXPIRED, REMOVED = "active", "expired", "removed"


@dataclass(frozen=True)
class LockRow:
    """A stored lock and whether (and by whom) it was removed."""

    lock: Lock
    removed_at: float | None
    removed_by: str | None

    def status(self, now: float) -> str:
        if self.removed_at is not None:
            return REMOVED
        return ACTIVE if self.lock.in_force(now) else EXPIRED


def next_version(conn: Connection) -> int:
    """Take the next lock-set version (the row lock, or SQLite's write lock, serializes)."""
    conn.execute(counters.update().where(counters.c.name == LOCK_COUNTER)
                 .values(value=counters.c.value + 1))
    return int(conn.execute(
        sa.select(counters.c.value).where(counters.c.name == LOCK_COUNTER)).scalar_one())


def current_version(conn: Connection) -> int:
    value = conn.execute(
        sa.select(counters.c.value).where(counters.c.name == LOCK_COUNTER)).scalar_one_or_none()
    return int(value or 0)


def current_epoch(conn: Connection) -> int:
    """The store's epoch; 0 until a controller first started on it."""
    value = conn.execute(
        sa.select(counters.c.value).where(counters.c.name == EPOCH_COUNTER)).scalar_one_or_none()
    return int(value or 0)


def new_epoch(conn: Connection) -> int:
    """Draw a new epoch (positive, fits a signed 64-bit column) and keep it."""
    epoch = secrets.randbits(62) + 1
    done = conn.execute(counters.update().where(counters.c.name == EPOCH_COUNTER)
                        .values(value=epoch))
    if not done.rowcount:
        conn.execute(counters.insert().values(name=EPOCH_COUNTER, value=epoch))
    return epoch


def add_lock(conn: Connection, lock: Lock) -> int:
    """Store ``lock`` and record it in the tamper-evident log; the new version."""
    conn.execute(locks.insert().values(
        lock_id=lock.lock_id, target=lock.target, reason=lock.reason,
        created_by=lock.created_by, created_at=lock.created_at,
        expires_at=lock.expires_at or None, removed_at=None, removed_by=None))
    auditlog.append(conn, Event("lock.added", lock.created_at, _case_of(lock.target),
                                lock.created_by, details={
                                    "lock_id": lock.lock_id, "target": lock.target,
                                    "reason": lock.reason, "expires_at": lock.expires_at or 0}))
    return next_version(conn)


def remove_lock(conn: Connection, lock_id: str, by: str, now: float) -> int | None:
    """Mark the lock removed; the new version, or None if no such lock was in the table
    unremoved."""
    row = conn.execute(locks.select().where(locks.c.lock_id == lock_id,
                                            locks.c.removed_at.is_(None))).first()
    if row is None:
        return None
    conn.execute(locks.update().where(locks.c.lock_id == lock_id)
                 .values(removed_at=now, removed_by=by))
    target = _row(row).lock.target
    auditlog.append(conn, Event("lock.removed", now, _case_of(target), by,
                                details={"lock_id": lock_id, "target": target}))
    return next_version(conn)


def target_known(conn: Connection, kind: str, ident: str) -> bool:
    """Whether the agent, case or grant exists, or the key is an enrolled engineer's."""
    if kind == "engineer-key":
        query = sa.select(principals.c.name).where(principals.c.role == "engineer",
                                                   principals.c.key_fingerprint == ident)
    else:
        table, column = {"agent": (agents, agents.c.agent_id), "case": (cases, cases.c.case_id),
                         "grant": (grants, grants.c.grant_id)}[kind]
        query = sa.select(column).select_from(table).where(column == ident)
    return conn.execute(query.limit(1)).first() is not None


def _case_of(target: str) -> str:
    """The case a lock names, so that the case's evidence shows it; "" for other targets."""
    kind, _, value = target.partition(":")
    return value if kind == "case" else ""


def get_lock(conn: Connection, lock_id: str) -> LockRow | None:
    row = conn.execute(locks.select().where(locks.c.lock_id == lock_id)).first()
    return None if row is None else _row(row)


def list_locks(conn: Connection, now: float, *, include_inactive: bool = False) -> list[LockRow]:
    """Oldest first; only those in force unless ``include_inactive``."""
    query = locks.select().order_by(locks.c.created_at, locks.c.lock_id)
    if not include_inactive:
        query = query.where(locks.c.removed_at.is_(None),
                            sa.or_(locks.c.expires_at.is_(None), locks.c.expires_at > now))
    return [_row(r) for r in conn.execute(query)]


def in_force(conn: Connection, now: float) -> list[Lock]:
    return [row.lock for row in list_locks(conn, now)]


# Checked before every relayed operation, so run at the driver (see controller.store.driver).
_LOCKS_ON = ("SELECT lock_id, target, reason, created_by, created_at, expires_at FROM locks "
             "WHERE removed_at IS NULL AND target IN ({})")


def lock_on(conn: Connection, subject: Subject, now: float) -> Lock | None:
    """The lock in force that covers ``subject``, if any (one indexed lookup)."""
    targets = sorted(subject.targets())
    if not targets:
        return None
    rows = driver.rows(conn, _LOCKS_ON.format(driver.placeholders(len(targets))), targets)
    return covering((Lock(lock_id=lock_id, target=target, reason=reason, created_by=by,
                          created_at=float(at), expires_at=float(expires or 0.0))
                     for lock_id, target, reason, by, at, expires in rows), subject, now)


def lock_set_for_agent(conn: Connection, agent_id: str,
                       now: float) -> tuple[int, int, list[Lock]]:
    """The epoch, version and locks of :func:`locks_for_agent`."""
    return (current_epoch(conn), *locks_for_agent(conn, agent_id, now))


def locks_for_agent(conn: Connection, agent_id: str, now: float) -> tuple[int, list[Lock]]:
    """The version and the locks in force an agent needs: its own agent lock, locks on its
    grants and on its customer's cases, and every engineer-key lock with its key id only
    (an engineer key serves every customer: its reason and author stay here)."""
    version = current_version(conn)
    found = in_force(conn, now)
    if not found:
        return version, []
    customer = conn.execute(sa.select(agents.c.customer_id)
                            .where(agents.c.agent_id == agent_id)).scalar_one_or_none()
    grant_ids = {g for g in conn.execute(sa.select(grants.c.grant_id)
                                         .where(grants.c.agent_id == agent_id)).scalars()}
    case_ids = set(conn.execute(sa.select(cases.c.case_id)
                                .where(cases.c.customer_id == customer)).scalars()) \
        if customer is not None else set()
    mine = {f"agent:{agent_id}", *(f"grant:{g}" for g in grant_ids),
            *(f"case:{c}" for c in case_ids)}
    return version, [lock if lock.target in mine else replace(lock, reason="", created_by="")
                     for lock in found
                     if lock.target in mine or lock.target.startswith("engineer-key:")]


def _row(row: Row[tuple[object, ...]]) -> LockRow:
    m = row._mapping
    lock = Lock(lock_id=m["lock_id"], target=m["target"], reason=m["reason"],
                created_by=m["created_by"], created_at=float(m["created_at"]),
                expires_at=float(m["expires_at"] or 0.0))
    return LockRow(lock, m["removed_at"], m["removed_by"])
