"""Locks as the services use them: the admin's AddLock/RemoveLock/ListLocks, the agents'
FetchLocks, and :func:`refuse_locked`, which every engineer action runs in its transaction.

A change is stored with the next lock-set version, logged, and pushed to agents at once
(:class:`controller.locks.LockBroker`); the admin's call returns once online agents have
it (or after a short wait). Refusals for locks are PermissionDenied: "permission denied"
outward, the lock in the log.
"""

from __future__ import annotations

import secrets

from sqlalchemy.engine import Connection

from controller.errors import InvalidArgument, NotFound, PermissionDenied
from controller.locks import lock_message, lock_set
from controller.logs import log_event
from controller.services import _common
from controller.services._common import Deps
from controller.store import locks as store_locks
from permissions.locks import BadLockTarget, Lock, Subject, parse_target, target
from rmaint.v1 import agent_pb2
from rmaint.v1 import controller_pb2 as pb

MAX_LOCK_SECONDS = 10 * 365 * 24 * 3600


def refuse_locked(conn: Connection, subject: Subject, now: float, what: str) -> None:
    """PermissionDenied if a lock in force covers ``subject``."""
    lock = store_locks.lock_on(conn, subject, now)
    if lock is not None:
        raise PermissionDenied(f"{what} refused: {lock.target} is locked ({lock.lock_id}: "
                               f"{lock.reason})")


async def add_lock(deps: Deps, by: str, request: pb.AddLockRequest) -> pb.LockRecord:
    try:
        kind, ident = parse_target(request.target)
    except BadLockTarget as exc:
        raise InvalidArgument(str(exc)) from exc
    reason = _common.text(request.reason, "reason")
    if not 0 <= request.duration_seconds <= MAX_LOCK_SECONDS:
        raise InvalidArgument(f"duration_seconds must be between 0 (no expiry) and "
                              f"{MAX_LOCK_SECONDS}")
    if not request.force and not await deps.store.read(store_locks.target_known, kind, ident):
        what = "an enrolled engineer's key" if kind == "engineer-key" else f"a known {kind}"
        raise NotFound(f"{target(kind, ident)} is not {what}; check the id, or lock it "
                       "anyway with --force (a target not known yet)")
    now = deps.clock()
    lock = Lock(lock_id=f"L-{secrets.token_hex(6)}", target=target(kind, ident), reason=reason,
                created_by=by, created_at=now,
                expires_at=now + request.duration_seconds if request.duration_seconds else 0.0)
    version = await deps.store.write(store_locks.add_lock, lock)
    log_event("lock.added", lock_id=lock.lock_id, target=lock.target, reason=reason, by=by,
              expires_at=lock.expires_at, version=version, forced=request.force)
    await _pushed(deps)
    return record(store_locks.LockRow(lock, None, None), now)


async def remove_lock(deps: Deps, by: str, lock_id: str) -> pb.LockRecord:
    lock_id = _common.text(lock_id, "lock_id", limit=32)
    now = deps.clock()
    version, row = await deps.store.write(_remove, lock_id, by, now)
    log_event("lock.removed", lock_id=lock_id, target=row.lock.target, by=by, version=version)
    await _pushed(deps)
    return record(row, now)


def _remove(conn: Connection, lock_id: str, by: str,
            now: float) -> tuple[int, store_locks.LockRow]:
    version = store_locks.remove_lock(conn, lock_id, by, now)
    row = store_locks.get_lock(conn, lock_id)
    if version is None or row is None:
        raise NotFound(f"no lock {lock_id} in force")
    return version, row


async def list_locks(deps: Deps, include_inactive: bool) -> list[pb.LockRecord]:
    now = deps.clock()
    rows = await deps.store.read(store_locks.list_locks, now, include_inactive=include_inactive)
    return [record(row, now) for row in rows]


async def fetch_locks(deps: Deps, agent_id: str) -> agent_pb2.LockSet:
    if deps.locks is not None:  # the broker draws the epoch of this controller process
        return await deps.locks.for_agent(agent_id)
    epoch, version, found = await deps.store.read(store_locks.lock_set_for_agent, agent_id,
                                                  deps.clock())
    return lock_set(version, found, epoch)


def record(row: store_locks.LockRow, now: float) -> pb.LockRecord:
    return pb.LockRecord(lock=lock_message(row.lock), removed_at=row.removed_at or 0.0,
                         removed_by=row.removed_by or "", status=row.status(now))


async def _pushed(deps: Deps) -> None:
    if deps.locks is not None:
        await deps.locks.changed()
