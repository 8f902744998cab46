"""A consent world for the agent, and a dispatcher on real SQLite files in tmp_path.

Times: the request is made at t=900, the grant issued at t=1000 for one hour; the fake
clock starts at t=1100, inside the window.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

import permissions as p
from agent.catalogue import CATALOGUE, OperationSpec
from agent.dispatcher import Dispatcher
from agent.log import OperationLog
from agent.state import StateStore
from rmaint.envelopes import to_wire
from rmaint.v1 import common_pb2

AGENT_ID = "web-1"


class FakeClock:
    def __init__(self, now: float = 1100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class StaticTrust:
    trust: p.AgentTrust

    def current(self) -> p.AgentTrust:
        return self.trust


@dataclass
class World:
    """An approver, an engineer, a request R-1 and its grant G-1 for agent web-1, case C-1."""

    approver: ed25519.Ed25519PrivateKey = field(default_factory=ed25519.Ed25519PrivateKey.generate)
    engineer: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    scopes: tuple[str, ...] = ("diag.read",)

    def __post_init__(self) -> None:
        self.request_envelope = p.request_access(
            self.engineer, request_id="R-1", case_id="C-1", agent_id=AGENT_ID,
            engineer="alice", scopes=self.scopes, duration_seconds=3600,
            reason="disk full on web-1", now=900)
        self.request = p.verify_access_request(self.request_envelope)
        self.grant_envelope = p.approve(self.request, self.approver, grant_id="G-1", now=1000)
        self.grant = p.verify_grant(self.grant_envelope, self.trust.approver_keys)

    @property
    def trust(self) -> p.AgentTrust:
        key = self.approver.public_key()
        return p.AgentTrust(AGENT_ID, {p.key_id(key): key})

    def op(self, seq: int = 1, operation: str = "diag.system", params: dict[str, Any] | None = None,
           *, grant_id: str = "G-1", session_id: str = "S-1",
           issued_at: int = 1100) -> common_pb2.Envelope:
        statement = p.Operation(session_id=session_id, seq=seq, grant_id=grant_id,
                                agent_id=AGENT_ID, case_id="C-1", operation=operation,
                                params=params or {}, issued_at=issued_at)
        return to_wire(p.sign(p.OPERATION, statement.to_payload(), self.engineer))

    def revocation(self, reason: str = "done") -> p.Envelope:
        return p.revoke(self.grant, self.approver, reason=reason, now=1200)

    def another_grant(self, request_id: str = "R-2", grant_id: str = "G-2"
                      ) -> tuple[p.Envelope, p.AccessRequest, p.Envelope, p.Grant]:
        """A second request of the same engineer for the same case, and its grant."""
        request_envelope = p.request_access(
            self.engineer, request_id=request_id, case_id="C-1", agent_id=AGENT_ID,
            engineer="alice", scopes=self.scopes, duration_seconds=3600, reason="again",
            now=900)
        request = p.verify_access_request(request_envelope)
        grant_envelope = p.approve(request, self.approver, grant_id=grant_id, now=1000)
        return (request_envelope, request, grant_envelope,
                p.verify_grant(grant_envelope, self.trust.approver_keys))


@dataclass
class Rig:
    """A dispatcher with its state and log, and the world it serves."""

    world: World
    dispatcher: Dispatcher
    state: StateStore
    log: OperationLog
    clock: FakeClock
    agent_key: ec.EllipticCurvePrivateKey
    log_path: Path
    state_path: Path


class Probe:
    """A fake read operation that records what the log held when it ran."""

    def __init__(self) -> None:
        self.log: OperationLog | None = None
        self.runs: list[list[str]] = []
        self.release = asyncio.Event()
        self.block = False

    def spec(self, name: str = "test.probe", scope: str = "diag.read") -> OperationSpec:
        return OperationSpec(name, scope, False, 5.0, 4096, self._prepare)

    def _prepare(self, params: Mapping[str, Any]) -> Callable[[], Any]:
        async def run() -> dict[str, Any]:
            assert self.log is not None
            entries = await asyncio.to_thread(self.log.entries)
            self.runs.append([e.outcome for e in entries])
            if self.block:
                await self.release.wait()
            return {"ok": True, "params": dict(params)}
        return run


RigFactory = Callable[..., Rig]


@pytest.fixture
def make_rig(tmp_path: Path) -> Iterator[RigFactory]:
    """Build a dispatcher; the grant G-1 is stored unless ``store_grant`` is False."""
    opened: list[Rig] = []

    def make(*, world: World | None = None, extra: Mapping[str, OperationSpec] | None = None,
             store_grant: bool = True, busy_timeout: float = 0.2) -> Rig:
        world = world or World()
        n = len(opened)
        state_path = tmp_path / f"state{n}.db"
        state = StateStore(state_path, busy_timeout=busy_timeout)
        log_path = tmp_path / f"log{n}.db"
        log = OperationLog(log_path, busy_timeout=busy_timeout)
        if store_grant:
            state.add_request(world.request_envelope, world.request, 950)
            state.store_grant(world.grant_envelope, world.grant, 1000)
        clock = FakeClock()
        key = ec.generate_private_key(ec.SECP256R1())
        dispatcher = Dispatcher(agent_id=AGENT_ID, signing_key=key,
                                trust=StaticTrust(world.trust), state=state, log=log,
                                catalogue={**CATALOGUE, **(extra or {})}, clock=clock)
        rig = Rig(world, dispatcher, state, log, clock, key, log_path, state_path)
        opened.append(rig)
        return rig

    yield make
    for rig in opened:
        rig.state.close()
        rig.log.close()
