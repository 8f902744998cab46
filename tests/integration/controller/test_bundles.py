"""Support bundles at the real controller (SQLite and PostgreSQL): relayed part by part,
stored by hash and attached to the case only when they match the agent's signed result,
bounded by the controller's limit, fetched in chunks. The agent is a fake at the edge: it
streams given parts with a receipt signed by the enrolled agent key."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

import permissions as p
from controller.services import _streams
from pki import certs
from pki.enroll import enroll
from pki.token import JoinToken
from rmaint.envelopes import to_wire
from rmaint.v1 import agent_pb2
from rmaint.v1 import controller_pb2 as pb
from rmaint.v1 import controller_pb2_grpc as rpc
from tests.integration.controller._support import (
    Deployment,
    FakeAgent,
    Person,
    approver,
    operation,
)
from tests.integration.controller.test_controller_flow import World


class StreamingAgent(FakeAgent):
    """Streams ``parts``; its signed result names ``claimed`` parts (default: the same)."""

    def __init__(self, agent: Person) -> None:
        super().__init__(agent)
        self.parts: list[bytes] = [b"bundle-", b"bytes"]
        self.claimed: list[bytes] | None = None
        self.pause = 0.0
        self.cancelled = asyncio.Event()

    async def ExecuteStream(self, request: agent_pb2.ExecuteRequest,
                            context: grpc.aio.ServicerContext,
                            ) -> AsyncIterator[agent_pb2.StreamPart]:
        envelope = p.Envelope(request.operation.payload_type, request.operation.payload, tuple(
            p.Signature(s.key_id, s.sig) for s in request.operation.signatures))
        op = p.Operation.from_payload(envelope.payload)
        try:
            for part in self.parts:
                yield agent_pb2.StreamPart(data=part)
                await asyncio.sleep(self.pause)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        claimed = b"".join(self.parts if self.claimed is None else self.claimed)
        result = json.dumps({"stream": {"parts": len(self.parts), "bytes": len(claimed),
                                        "sha256": hashlib.sha256(claimed).hexdigest()}}).encode()
        receipt = p.Receipt(
            agent_id="web-1", session_id=op.session_id, seq=op.seq, operation=op.operation,
            operation_digest=p.digest(envelope), outcome="ok",
            result_digest="sha256:" + hashlib.sha256(result).hexdigest(), at=op.issued_at,
            log_index=1)
        signed = p.sign(p.RECEIPT, receipt.to_payload(), self.agent.key)
        yield agent_pb2.StreamPart(done=agent_pb2.ExecuteResponse(result_json=result,
                                                                  receipt=to_wire(signed)))


@pytest.fixture
async def world(deployment: Deployment) -> AsyncIterator[tuple[World, StreamingAgent, str]]:
    d = deployment
    admin = rpc.AdminServiceStub(d.channel(d.admin()))
    await admin.AddCustomer(pb.AddCustomerRequest(customer=pb.Customer(
        customer_id="acme", name="Acme", contract_start="2020-01-01", contract_end="2099-12-31")))
    reply = await admin.CreateJoinToken(pb.CreateJoinTokenRequest(
        role="agent", subject="web-1", customer_id="acme"))
    key = certs.generate_key()
    enrolled = await enroll(JoinToken.decode(reply.token), key, agent_address="127.0.0.1:9")
    agent = d.person("agent", "web-1", key, cert_pem=enrolled.certificate_pem)
    fake = StreamingAgent(agent)
    address = await fake.start()
    approver_key, approver_id, approver_raw = approver()
    await rpc.AgentReportServiceStub(d.channel(agent)).Heartbeat(pb.HeartbeatRequest(
        address=address, approver_keys={approver_id: approver_raw}))
    engineer = d.person("engineer", "alice")
    case = await rpc.CaseServiceStub(d.channel(engineer)).OpenCase(pb.OpenCaseRequest(
        customer_id="acme", title="slow responses"))
    w = World(d, agent, fake, engineer, approver_key, case.case.case_id)
    await w.grant()
    session = await w.session()
    try:
        yield w, fake, session.session.session_id
    finally:
        await fake.stop()


async def _run(w: World, session_id: str, seq: int,
               name: str = "bundle.create") -> tuple[list[bytes], agent_pb2.ExecuteResponse]:
    op = operation(w.engineer, session_id=session_id, seq=seq, grant_id="G-1",
                   case_id=w.case_id, name=name, issued_at=int(w.d.clock.now))
    parts: list[bytes] = []
    async for message in w.as_engineer().RunOperationStream(
            agent_pb2.ExecuteRequest(operation=to_wire(op))):
        if message.WhichOneof("kind") == "done":
            return parts, message.done
        parts.append(message.data)
    raise AssertionError("no answer")


async def _events(w: World, session_id: str) -> list[Any]:
    shown = await w.records().GetSession(pb.GetSessionRequest(session_id=session_id))
    return list(shown.events)


async def test_a_matching_bundle_is_stored_attached_and_fetched(
        world: tuple[World, StreamingAgent, str]) -> None:
    w, fake, session_id = world
    parts, done = await _run(w, session_id, 1)
    data = b"".join(fake.parts)
    digest = hashlib.sha256(data).hexdigest()
    assert parts == fake.parts and done.event_id > 0
    case = await w.records().GetCase(pb.GetCaseRequest(case_id=w.case_id))
    [bundle] = case.bundles
    assert (bundle.sha256, bundle.size, bundle.session_id, bundle.event_id, bundle.agent_id,
            bundle.stored) == (digest, len(data), session_id, done.event_id, "web-1", True)
    [event] = await _events(w, session_id)
    assert event.outcome == "ok" and event.detail == f"bundle sha256:{digest} ({len(data)} bytes)"
    chunks = [c async for c in w.records().GetBundle(pb.GetBundleRequest(case_id=w.case_id))]
    assert b"".join(c.data for c in chunks) == data and chunks[0].bundle == bundle
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        [c async for c in w.records().GetBundle(pb.GetBundleRequest(
            case_id=w.case_id, sha256="0" * 64))]
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    # The same bytes again: one blob, one attachment.
    await _run(w, session_id, 2)
    case = await w.records().GetCase(pb.GetCaseRequest(case_id=w.case_id))
    assert len(case.bundles) == 1


async def test_a_bundle_that_does_not_match_the_signed_result_is_not_stored(
        world: tuple[World, StreamingAgent, str]) -> None:
    w, fake, session_id = world
    fake.claimed = [b"other bytes"]
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await _run(w, session_id, 1)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "does not match" in (failed.value.details() or "")
    case = await w.records().GetCase(pb.GetCaseRequest(case_id=w.case_id))
    assert list(case.bundles) == []
    [event] = await _events(w, session_id)
    assert "bundle not stored" in event.detail and event.receipt.payload  # receipt kept


async def test_a_bundle_over_the_controllers_limit_is_cancelled_on_the_agent(
        world: tuple[World, StreamingAgent, str], monkeypatch: pytest.MonkeyPatch) -> None:
    w, fake, session_id = world
    monkeypatch.setattr(_streams, "BUNDLE_LIMIT", 10)
    fake.parts, fake.pause = [b"x" * 6] * 5, 0.05
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _run(w, session_id, 1)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "over the controller's limit of 10 bytes" in (refused.value.details() or "")
    await asyncio.wait_for(fake.cancelled.wait(), 5)
    [event] = await _events(w, session_id)
    assert (event.outcome, event.detail) == ("error", "the bundle is over the controller's "
                                                      "limit of 10 bytes")
    case = await w.records().GetCase(pb.GetCaseRequest(case_id=w.case_id))
    assert list(case.bundles) == []


async def test_parts_of_other_operations_are_relayed_not_kept(
        world: tuple[World, StreamingAgent, str]) -> None:
    w, fake, session_id = world
    parts, _ = await _run(w, session_id, 1, name="diag.watch")
    assert parts == fake.parts
    case = await w.records().GetCase(pb.GetCaseRequest(case_id=w.case_id))
    assert list(case.bundles) == []
    [event] = await _events(w, session_id)
    assert (event.operation, event.outcome, event.detail) == ("diag.watch", "ok", "")
