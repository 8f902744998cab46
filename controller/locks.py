"""Pushing locks to agents: at once on every change, and when a dial-out agent connects.

Each agent receives the full set of locks in force that concern it (its own agent lock,
locks on its grants and its customer's cases, every engineer-key lock by key id alone)
with the set's version and the store's epoch, which a broker draws anew when it first
serves (:func:`controller.store.locks.lock_set_for_agent`). Dial-out agents get it as a
``locks`` frame on their stream; direct agents through ``AgentService.ApplyLocks``, dialled
with the controller's certificate. A push that fails is only logged: agents also pull the
set (``AgentReportService.FetchLocks``) every few seconds, so a lock reaches an agent that
was unreachable as soon as it is back. A locked agent's dial-out stream is closed after
the set that locks it was sent on it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import grpc

from controller.dialin import DialIn
from controller.errors import PermissionDenied
from controller.logs import log_event
from controller.store import Store, directory
from controller.store import locks as store_locks
from permissions.locks import Lock
from pki.identity import Identity
from pki.tls import TlsFiles, secure_channel
from rmaint.v1 import agent_pb2, agent_pb2_grpc
from rmaint.v1 import controller_pb2 as pb

PUSH_TIMEOUT = 3.0  # per direct agent
PUSH_WAIT = 1.5  # how long a change waits for its pushes before answering the admin


def lock_message(lock: Lock) -> agent_pb2.Lock:
    return agent_pb2.Lock(lock_id=lock.lock_id, target=lock.target, reason=lock.reason,
                          created_by=lock.created_by, created_at=lock.created_at,
                          expires_at=lock.expires_at)


def lock_set(version: int, found: list[Lock], epoch: int = 0) -> agent_pb2.LockSet:
    return agent_pb2.LockSet(version=version, epoch=epoch,
                             locks=[lock_message(lock) for lock in found])


class LockBroker:
    """Sends each agent its lock set; owns no state but its background pushes."""

    def __init__(self, store: Store, clock: Callable[[], float], files: TlsFiles,
                 trust_domain: str, dialin: DialIn | None) -> None:
        self._store = store
        self._clock = clock
        self._files = files
        self._trust_domain = trust_domain
        self._dialin = dialin
        self._pushes: set[asyncio.Task[None]] = set()
        self._epoch_drawn = False
        if dialin is not None:
            dialin.greeting = self.greeting

    async def for_agent(self, agent_id: str) -> agent_pb2.LockSet:
        await self._draw_epoch()
        epoch, version, found = await self._store.read(store_locks.lock_set_for_agent,
                                                       agent_id, self._clock())
        return lock_set(version, found, epoch)

    async def _draw_epoch(self) -> None:
        """Once per controller process: a new store epoch, so that agents take its sets
        even if the store was restored from a backup (its version counter gone back)."""
        if self._epoch_drawn:
            return
        self._epoch_drawn = True
        epoch = await self._store.write(store_locks.new_epoch)
        log_event("locks.epoch", epoch=epoch)

    async def greeting(self, agent_id: str) -> pb.ControllerFrame | None:
        """The first frame of a dial-out agent's stream (None while no lock was ever made:
        nothing to tell); PermissionDenied if the agent is locked."""
        locks = await self.for_agent(agent_id)
        mine = f"agent:{agent_id}"
        if any(lock.target == mine for lock in locks.locks):
            raise PermissionDenied(f"agent {agent_id} is locked")
        return pb.ControllerFrame(call_id=0, locks=locks) if locks.version else None

    async def changed(self) -> None:
        """Push every agent its set now; waits up to PUSH_WAIT, the rest goes on behind."""
        agents = await self._store.read(directory.list_agents, "")
        connected = set(self._dialin.connected()) if self._dialin is not None else set()
        tasks = []
        for agent in agents:
            if agent.agent_id in connected or agent.address:
                task = asyncio.create_task(self._push(agent.agent_id, agent.address,
                                                      agent.agent_id in connected))
                self._pushes.add(task)
                task.add_done_callback(self._pushes.discard)
                tasks.append(task)
        if tasks:
            await asyncio.wait(tasks, timeout=PUSH_WAIT)

    async def _push(self, agent_id: str, address: str, connected: bool) -> None:
        try:
            locks = await self.for_agent(agent_id)
            if connected and self._dialin is not None:
                self._dialin.send(agent_id, pb.ControllerFrame(call_id=0, locks=locks))
                if any(lock.target == f"agent:{agent_id}" for lock in locks.locks):
                    self._dialin.disconnect(agent_id)
                    log_event("locks.disconnected", agent_id=agent_id)
            if address:
                await self._apply_direct(agent_id, address, locks)
            log_event("locks.pushed", agent_id=agent_id, version=locks.version,
                      locks=len(locks.locks), direct=bool(address), stream=connected)
        except Exception as exc:  # the agent pulls the set anyway: log and go on
            log_event("locks.push_failed", logging.WARNING, agent_id=agent_id,
                      error=f"{type(exc).__name__}: {exc}"[:300])

    async def _apply_direct(self, agent_id: str, address: str,
                            locks: agent_pb2.LockSet) -> None:
        identity = Identity(self._trust_domain, "agent", agent_id)
        async with secure_channel(address, self._files, identity) as channel:
            try:
                await agent_pb2_grpc.AgentServiceStub(channel).ApplyLocks(
                    locks, timeout=PUSH_TIMEOUT)
            except grpc.aio.AioRpcError as exc:
                raise RuntimeError(f"ApplyLocks: {exc.code().name}") from exc

    async def stop(self) -> None:
        for task in list(self._pushes):
            task.cancel()
        await asyncio.gather(*self._pushes, return_exceptions=True)
