"""Fixtures for the customer CLI: enrolled homes, engineer requests and a fake daemon.

The fake daemon is a real gRPC server for AgentLocalService on the home's Unix socket that
checks what it is sent as the real one would (decisions verified against agent.toml's pins,
engineer keys pinned on first approval, a changed key refused unless accepted).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner, Result

import permissions as p
from agent.cli import app
from agent.config import AgentConfig, save
from agent.config import load as load_config
from rmaint.envelopes import from_wire, to_wire
from rmaint.v1 import agent_pb2, agent_pb2_grpc

AGENT_ID = "web-1"


def make_home(root: Path, name: str = "agent-home") -> Path:
    home = root / name
    save(home, AgentConfig(id=AGENT_ID, trust_domain="example.test",
                           controller="127.0.0.1:7443"))
    return home


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An enrolled agent home (agent.toml only) with no approver pinned."""
    return make_home(tmp_path)


Invoke = Callable[..., Result]


@pytest.fixture
def rmagent(home: Path) -> Invoke:
    """Run ``rmagent --home <home> ARGS...`` on a 200-column "terminal"; stdin is not a tty."""
    runner = CliRunner(env={"COLUMNS": "200"})

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(app, ["--home", str(home), *args], input=input)

    return invoke


def signed_request(request_id: str = "R-1", *, scopes: tuple[str, ...] = ("diag.read",),
                   duration: int = 7200, agent_id: str = AGENT_ID,
                   reason: str = "disk full on web-1",
                   key: ec.EllipticCurvePrivateKey | None = None,
                   engineer: str = "alice") -> p.Envelope:
    return p.request_access(key or ec.generate_private_key(ec.SECP256R1()),
                            request_id=request_id, case_id="C-0001", agent_id=agent_id,
                            engineer=engineer, scopes=scopes, duration_seconds=duration,
                            reason=reason, now=int(time.time()))


@dataclass
class FakeAgent(agent_pb2_grpc.AgentLocalServiceServicer):
    """Holds requests and grants; accepts only decisions signed by a pinned approver."""

    home: Path
    requests: dict[str, tuple[p.Envelope, str]] = field(default_factory=dict)
    grants: dict[str, p.Envelope] = field(default_factory=dict)
    revoked: dict[str, p.Envelope] = field(default_factory=dict)
    denials: list[p.Envelope] = field(default_factory=list)
    pins: list[agent_pb2.EngineerKey] = field(default_factory=list)
    accept_new_key_sent: list[bool] = field(default_factory=list)
    sync_error: str = ""
    shells: list[agent_pb2.LiveShell] = field(default_factory=list)

    def pin(self, envelope: p.Envelope, pinned_at: int = 1_800_000_000,
            approver: str = "ops") -> None:
        """Pin the key of the request ``envelope`` as an earlier approval would have."""
        r = p.verify_access_request(envelope)
        self.pins.append(agent_pb2.EngineerKey(
            engineer=r.engineer, key_id=r.engineer_key_id, pinned_at=pinned_at,
            approver_key_id="sha256:" + "ab" * 32, approver=approver,
            request_id=r.request_id, grant_id="G-earlier"))

    def _pins_of(self, engineer: str) -> list[agent_pb2.EngineerKey]:
        return [k for k in self.pins if k.engineer == engineer]

    def add_request(self, envelope: p.Envelope) -> None:
        self.requests[p.verify_access_request(envelope).request_id] = (envelope, "pending")

    def _verify(self, message: object, context: grpc.ServicerContext) -> p.Decision:
        keys = load_config(self.home).approver_keys()
        try:
            return p.verify_decision(from_wire(message), keys)  # type: ignore[arg-type]
        except p.PermissionsError as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"decision refused: {exc}")
            raise

    def ListRequests(self, request, context):  # type: ignore[no-untyped-def]
        items = []
        for env, status in self.requests.values():
            if request.include_decided or status == "pending":
                asked = p.verify_access_request(env)
                pinned = self._pins_of(asked.engineer)
                changed = bool(pinned) and all(k.key_id != asked.engineer_key_id
                                               for k in pinned)
                items.append(agent_pb2.PendingRequest(
                    request=to_wire(env), status=status, received_at=1, key_changed=changed,
                    pinned_keys=pinned))
        return agent_pb2.ListRequestsResponse(requests=items, sync_error=self.sync_error)

    def Approve(self, request, context):  # type: ignore[no-untyped-def]
        grant = self._verify(request.grant, context)
        assert isinstance(grant, p.Grant)
        self.accept_new_key_sent.append(request.accept_new_key)
        pinned = self._pins_of(grant.engineer)
        if all(k.key_id != grant.engineer_key_id for k in pinned):
            if pinned and not request.accept_new_key:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, "KEY CHANGED (fake)")
            self.pins.append(agent_pb2.EngineerKey(
                engineer=grant.engineer, key_id=grant.engineer_key_id,
                pinned_at=int(time.time()), approver_key_id=grant.approver_key_id,
                request_id=grant.request_id, grant_id=grant.grant_id))
        self.grants[grant.grant_id] = from_wire(request.grant)
        envelope, _ = self.requests[grant.request_id]
        self.requests[grant.request_id] = (envelope, "approved")
        return agent_pb2.ApproveResponse(grant_id=grant.grant_id, reported=True)

    def Deny(self, request, context):  # type: ignore[no-untyped-def]
        self._verify(request.denial, context)
        self.denials.append(from_wire(request.denial))
        return agent_pb2.DenyResponse(reported=False)

    def Revoke(self, request, context):  # type: ignore[no-untyped-def]
        revocation = self._verify(request.revocation, context)
        assert isinstance(revocation, p.Revocation)
        self.revoked[revocation.grant_id] = from_wire(request.revocation)
        return agent_pb2.RevokeResponse(cancelled_operations=2, reported=True)

    def ListShells(self, request, context):  # type: ignore[no-untyped-def]
        return agent_pb2.ListShellsResponse(shells=self.shells)

    def ListGrants(self, request, context):  # type: ignore[no-untyped-def]
        items = [agent_pb2.GrantState(grant=to_wire(env),
                                      status="revoked" if gid in self.revoked else "active",
                                      revoked_at=5 if gid in self.revoked else 0)
                 for gid, env in self.grants.items()
                 if request.include_inactive or gid not in self.revoked]
        return agent_pb2.ListGrantsResponse(grants=items)

    def ListEngineerKeys(self, request, context):  # type: ignore[no-untyped-def]
        return agent_pb2.ListEngineerKeysResponse(keys=self.pins)

    def ForgetEngineerKeys(self, request, context):  # type: ignore[no-untyped-def]
        gone = [k for k in self.pins if k.engineer == request.engineer
                and (not request.key_id or k.key_id == request.key_id)]
        if not gone:
            context.abort(grpc.StatusCode.NOT_FOUND,
                          f"no key is pinned for engineer {request.engineer}")
        self.pins = [k for k in self.pins if k not in gone]
        return agent_pb2.ForgetEngineerKeysResponse(forgotten=gone)

    def Status(self, request, context):  # type: ignore[no-untyped-def]
        config = load_config(self.home)
        return agent_pb2.StatusResponse(
            agent_id=config.id, listen=config.listen, controller=config.controller,
            approver_key_ids=[a.key_id for a in config.approvers], operations_in_flight=0,
            unreported=1)


@pytest.fixture
def daemon(home: Path) -> Iterator[FakeAgent]:
    """A fake daemon serving on ``<home>/rmagent.sock``."""
    fake = FakeAgent(home)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    agent_pb2_grpc.add_AgentLocalServiceServicer_to_server(fake, server)
    server.add_insecure_port(f"unix:{home / 'rmagent.sock'}")
    server.start()
    yield fake
    server.stop(grace=None).wait()
