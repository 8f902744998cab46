"""The expiry sweep: grants that ran out and requests nobody decided.

Every ``interval`` seconds (5 by default) :meth:`Sweeper.sweep` writes one consent log
entry "expired" per grant whose ``not_after`` has passed by the injected clock, closes the
sessions still open under it (end reason "expired"), and expires access requests left
undecided for 24 h. Each expiry is claimed with a conditional update, so it is logged
exactly once even when several controller replicas sweep the same database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from controller.errors import StoreError
from controller.logs import log_event
from controller.rules import REQUEST_TTL
from controller.store import Store, grants, requests, sessions
from controller.store.records import ConsentEntry

SWEEP_INTERVAL = 5.0
ACTOR = "controller"
EXPIRED = "expired"


@dataclass(frozen=True)
class Swept:
    """What one sweep expired."""

    grants: tuple[str, ...] = ()
    requests: tuple[str, ...] = ()
    sessions_closed: int = 0


class Sweeper:
    """Runs :func:`sweep_once` periodically from :meth:`start` until :meth:`stop`."""

    def __init__(self, store: Store, clock: Callable[[], float], *,
                 interval: float = SWEEP_INTERVAL) -> None:
        self._store = store
        self._clock = clock
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def sweep(self) -> Swept:
        """One sweep at the clock's current time."""
        swept = await self._store.write(sweep_once, self._clock())
        if swept.grants or swept.requests:
            log_event("sweep.expired", grants=list(swept.grants), requests=list(swept.requests),
                      sessions_closed=swept.sessions_closed)
        return swept

    def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._loop(), name="rmaint-expiry-sweep")

    async def stop(self) -> None:
        """Stop after the sweep under way (if any) has committed."""
        task, self._task = self._task, None
        if task is not None:
            self._stopping.set()
            await task

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.sweep()
            except StoreError as exc:
                # The database may come back; the next sweep catches up on what is due.
                log_event("sweep.failed", logging.WARNING, reason=str(exc))
            except Exception:
                # A bug must not end sweeping for good: log it loudly and keep going.
                log_event("sweep.crashed", logging.ERROR, exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)


def sweep_once(conn: Connection, now: float) -> Swept:
    """Expire what is due at ``now``, in the caller's transaction."""
    expired_grants, closed = _expire_grants(conn, now)
    return Swept(expired_grants, _expire_requests(conn, now), closed)


def _expire_grants(conn: Connection, now: float) -> tuple[tuple[str, ...], int]:
    done: list[str] = []
    closed = 0
    for grant in grants.due_for_expiry(conn, now):
        if not grants.mark_expired(conn, grant.grant_id, now):
            continue
        requests.set_status(conn, grant.request_id, EXPIRED, only_if=("approved",))
        requests.append_consent(conn, ConsentEntry(
            entry_id=None, at=now, kind=EXPIRED, request_id=grant.request_id,
            grant_id=grant.grant_id, case_id=grant.case_id, agent_id=grant.agent_id,
            actor=ACTOR, reason=f"grant ended at {grant.not_after}", scopes=grant.scopes,
            envelope=None,
        ))
        closed += sessions.close_open_sessions(conn, grant_id=grant.grant_id, reason=EXPIRED,
                                               now=now)
        done.append(grant.grant_id)
    return tuple(done), closed


def _expire_requests(conn: Connection, now: float) -> tuple[str, ...]:
    done: list[str] = []
    for request in requests.stale_requests(conn, now - REQUEST_TTL):
        if not requests.set_status(conn, request.request_id, EXPIRED,
                                   only_if=(requests.PENDING,)):
            continue
        requests.append_consent(conn, ConsentEntry(
            entry_id=None, at=now, kind=EXPIRED, request_id=request.request_id, grant_id=None,
            case_id=request.case_id, agent_id=request.agent_id, actor=ACTOR,
            reason="not decided within 24 h", scopes=request.scopes, envelope=None,
        ))
        done.append(request.request_id)
    return tuple(done)
