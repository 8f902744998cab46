"""The sync loop against a fake controller on real mTLS, and the blocking entry point."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

import permissions as p
from pki.identity import Identity
from pki.tls import peer_identity, server_credentials, server_options
from rmaint.envelopes import from_wire, to_wire
from rmaint.v1 import agent_pb2, agent_pb2_grpc, controller_pb2, controller_pb2_grpc
from tests.integration.agent.conftest import TD, Deployment, StartAgent


@dataclass
class FakeController(controller_pb2_grpc.AgentReportServiceServicer):
    """Serves requests to agent web-1 and keeps what it is told."""

    requests: list[p.Envelope] = field(default_factory=list)
    heartbeats: list[controller_pb2.HeartbeatRequest] = field(default_factory=list)
    reports: list[p.Envelope] = field(default_factory=list)
    callers: set[str] = field(default_factory=set)
    refuse_fetch: bool = False
    refuse_reports: int = 0

    def _caller(self, context: grpc.aio.ServicerContext) -> None:
        identity = peer_identity(context)
        self.callers.add(identity.uri if identity else "")

    async def Heartbeat(self, request: controller_pb2.HeartbeatRequest,
                        context: grpc.aio.ServicerContext) -> controller_pb2.HeartbeatResponse:
        self._caller(context)
        self.heartbeats.append(request)
        return controller_pb2.HeartbeatResponse(server_time=time.time())

    async def FetchRequests(self, request: controller_pb2.FetchRequestsRequest,
                            context: grpc.aio.ServicerContext
                            ) -> controller_pb2.FetchRequestsResponse:
        self._caller(context)
        if self.refuse_fetch:  # as an answer over gRPC's message limit is refused
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "message too large")
        return controller_pb2.FetchRequestsResponse(requests=[to_wire(r) for r in self.requests])

    async def ReportConsent(self, request: controller_pb2.ReportConsentRequest,
                            context: grpc.aio.ServicerContext
                            ) -> controller_pb2.ReportConsentResponse:
        self._caller(context)
        if self.refuse_reports:
            self.refuse_reports -= 1
            await context.abort(grpc.StatusCode.INTERNAL, "internal error")
        self.reports.append(from_wire(request.decision))
        return controller_pb2.ReportConsentResponse()


@pytest.fixture
async def controller(deployment: Deployment) -> AsyncIterator[FakeController]:
    fake = FakeController()
    server = grpc.aio.server(options=server_options())
    controller_pb2_grpc.add_AgentReportServiceServicer_to_server(fake, server)
    port = server.add_secure_port("127.0.0.1:0", server_credentials(deployment.controller))
    await server.start()
    deployment.set_controller(f"127.0.0.1:{port}")
    yield fake
    await server.stop(None)


async def test_requests_arrive_and_decisions_are_reported(
        deployment: Deployment, controller: FakeController, start_agent: StartAgent) -> None:
    good = deployment.request("R-1")
    stranger = p.request_access(deployment.engineer_key, request_id="R-2", case_id="C-0001",
                                agent_id="db-1", engineer="alice", scopes=["diag.read"],
                                duration_seconds=60, reason="x", now=int(time.time()))
    forged = p.Envelope(good.payload_type, good.payload.replace(b"slow", b"fast"),
                        good.signatures)
    controller.requests += [good, stranger, forged]
    agent = await start_agent()
    async with grpc.aio.insecure_channel(f"unix:{agent.socket}") as channel:
        local = agent_pb2_grpc.AgentLocalServiceStub(channel)
        listed = await local.ListRequests(agent_pb2.ListRequestsRequest(sync=True))
        assert listed.sync_error == ""
        assert [from_wire(r.request) for r in listed.requests] == [good]
        grant = deployment.grant(good)
        approved = await local.Approve(agent_pb2.ApproveRequest(grant=to_wire(grant)))
        assert approved.reported and controller.reports == [grant]
        assert (await local.Status(agent_pb2.StatusRequest())).unreported == 0
    beat = controller.heartbeats[-1]
    approver = deployment.approver.public_key()
    assert beat.address == agent.address
    assert dict(beat.approver_keys) == {p.key_id(approver): p.public_key_bytes(approver)}
    assert controller.callers == {Identity(TD, "agent", "web-1").uri}


async def test_a_refused_fetch_does_not_hold_up_the_decisions_or_the_witnessing(
        deployment: Deployment, controller: FakeController, start_agent: StartAgent) -> None:
    request = deployment.request("R-1")
    controller.requests.append(request)
    agent = await start_agent()
    async with grpc.aio.insecure_channel(f"unix:{agent.socket}") as channel:
        local = agent_pb2_grpc.AgentLocalServiceStub(channel)
        await local.ListRequests(agent_pb2.ListRequestsRequest(sync=True))
        controller.refuse_fetch, controller.refuse_reports = True, 1
        grant = deployment.grant(request)
        approved = await local.Approve(agent_pb2.ApproveRequest(grant=to_wire(grant)))
        assert not approved.reported  # kept, to be delivered by a later round
        done = await local.Sync(agent_pb2.SyncRequest())
        assert done.sync_error.endswith(": resource_exhausted: message too large")  # said
        assert controller.reports == [grant]  # delivered all the same
        assert (await local.Status(agent_pb2.StatusRequest())).unreported == 0


def _signed_with_reason(deployment: Deployment, request_id: str, reason: str) -> p.Envelope:
    """A request signed as an engineer's client that did not check its reason would sign it."""
    key = deployment.engineer_key
    statement = p.AccessRequest(
        request_id=request_id, case_id="C-0001", agent_id="web-1", engineer="alice",
        engineer_key=p.encode_key(key.public_key()), scopes=("diag.read",),
        duration_seconds=3600, reason=reason, created_at=int(time.time()))
    return p.sign(p.ACCESS_REQUEST, statement.to_payload(), key)


async def test_a_reason_that_would_drive_the_terminal_is_not_taken_in_but_stays_readable(
        deployment: Deployment, controller: FakeController, start_agent: StartAgent) -> None:
    # Kept before the rule (from a controller that did not check): still listed and
    # decided. Sent now: ignored, so the customer never sees it.
    old = _signed_with_reason(deployment, "R-1", "slow\nscopes  diag.read")
    deployment.receive(old)
    controller.requests.append(_signed_with_reason(deployment, "R-2", "slow\x1b[2A"))
    agent = await start_agent()
    async with grpc.aio.insecure_channel(f"unix:{agent.socket}") as channel:
        local = agent_pb2_grpc.AgentLocalServiceStub(channel)
        listed = await local.ListRequests(agent_pb2.ListRequestsRequest(sync=True))
        assert [from_wire(r.request) for r in listed.requests] == [old]
        grant = deployment.grant(old)
        assert (await local.Approve(agent_pb2.ApproveRequest(grant=to_wire(grant)))).reported


async def test_a_request_filed_under_a_pinned_name_with_another_key_is_only_flagged(
        deployment: Deployment, controller: FakeController, start_agent: StartAgent,
        caplog: pytest.LogCaptureFixture) -> None:
    """The controller can file a request in alice's name with its own key: the agent keeps
    it, flags it and logs it, and nothing it fetches changes the customer's pins."""
    first = deployment.request("R-1")
    controller.requests.append(first)
    agent = await start_agent()
    async with grpc.aio.insecure_channel(f"unix:{agent.socket}") as channel:
        local = agent_pb2_grpc.AgentLocalServiceStub(channel)
        await local.ListRequests(agent_pb2.ListRequestsRequest(sync=True))
        await local.Approve(agent_pb2.ApproveRequest(grant=to_wire(deployment.grant(first))))
        before = await local.ListEngineerKeys(agent_pb2.ListEngineerKeysRequest())
        own_key = ec.generate_private_key(ec.SECP256R1())
        forged = p.request_access(own_key, request_id="R-2", case_id="C-0001",
                                  agent_id="web-1", engineer="alice", scopes=["shell"],
                                  duration_seconds=3600, reason="urgent",
                                  now=int(time.time()))
        controller.requests.append(forged)
        with caplog.at_level(logging.WARNING, logger="agent.sync"):
            listed = await local.ListRequests(agent_pb2.ListRequestsRequest(sync=True))
        assert listed.sync_error == ""
        (row,) = listed.requests
        assert from_wire(row.request) == forged
        assert (row.status, row.key_changed) == ("pending", True)
        after = await local.ListEngineerKeys(agent_pb2.ListEngineerKeysRequest())
        assert list(after.keys) == list(before.keys)
        assert [k.key_id for k in after.keys] == \
            [p.verify_access_request(first).engineer_key_id]
    assert any(r.getMessage() == "access request signed by a key not pinned for its engineer"
               for r in caplog.records)


async def test_reports_wait_in_the_outbox_until_the_controller_is_back(
        deployment: Deployment, start_agent: StartAgent) -> None:
    request = deployment.request("R-1")
    deployment.receive(request)
    agent = await start_agent()
    async with grpc.aio.insecure_channel(f"unix:{agent.socket}") as channel:
        local = agent_pb2_grpc.AgentLocalServiceStub(channel)
        grant = deployment.grant(request)
        approved = await local.Approve(agent_pb2.ApproveRequest(grant=to_wire(grant)))
        assert not approved.reported
        assert agent.sync.last_error
    await agent.stop()
    fake = FakeController()
    server = grpc.aio.server(options=server_options())
    controller_pb2_grpc.add_AgentReportServiceServicer_to_server(fake, server)
    port = server.add_secure_port("127.0.0.1:0", server_credentials(deployment.controller))
    await server.start()
    try:
        deployment.set_controller(f"127.0.0.1:{port}")
        again = await start_agent()
        for _ in range(100):
            if fake.reports:
                break
            await asyncio.sleep(0.05)
        assert fake.reports == [grant]
        assert again.sync.last_error == ""
    finally:
        await server.stop(None)


def test_run_serves_until_sigterm_and_cleans_up(deployment: Deployment) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    code = ("import sys; from pathlib import Path; from agent.daemon import run; "
            "run(Path(sys.argv[1]))")
    proc = subprocess.Popen([sys.executable, "-c", code, str(deployment.home)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        socket = deployment.home / "rmagent.sock"
        deadline = time.monotonic() + 20
        while not socket.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert socket.exists(), proc.stderr.read().decode() if proc.poll() is not None else ""
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr.decode()
    assert not socket.exists()
    assert b'"msg": "rmagent stopped"' in stderr
    assert (deployment.home / "agent.log").read_text().count("rmagent serving") == 1
