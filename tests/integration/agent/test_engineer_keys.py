"""Engineer keys pinned on first use by the customer, on the real daemon and rmagent."""

from __future__ import annotations

import asyncio
import json
import time

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner, Result

import permissions as p
from agent.cli import app
from rmaint.envelopes import to_wire
from rmaint.v1 import agent_pb2, agent_pb2_grpc
from tests.integration.agent.conftest import AGENT_ID, Deployment, StartAgent


def filed_by_another_key(request_id: str, engineer: str = "alice") -> p.Envelope:
    """A request in ``engineer``'s name signed by a key that is not theirs (say, the
    controller's own): self-consistent, so it verifies."""
    return p.request_access(ec.generate_private_key(ec.SECP256R1()), request_id=request_id,
                            case_id="C-0001", agent_id=AGENT_ID, engineer=engineer,
                            scopes=("diag.read",), duration_seconds=3600,
                            reason="slow web-1", now=int(time.time()))


def key_of(envelope: p.Envelope) -> str:
    return p.verify_access_request(envelope).engineer_key_id


async def _pins(local: agent_pb2_grpc.AgentLocalServiceStub) -> list[tuple[str, str]]:
    reply = await local.ListEngineerKeys(agent_pb2.ListEngineerKeysRequest())
    return [(k.engineer, k.key_id) for k in reply.keys]


async def test_a_changed_key_needs_acceptance_and_pins_survive_restarts(
        deployment: Deployment, start_agent: StartAgent) -> None:
    first = deployment.request("R-1")
    deployment.receive(first)
    agent = await start_agent()
    async with grpc.aio.insecure_channel(f"unix:{agent.socket}") as channel:
        local = agent_pb2_grpc.AgentLocalServiceStub(channel)
        listed = await local.ListRequests(agent_pb2.ListRequestsRequest())
        assert [(r.key_changed, len(r.pinned_keys)) for r in listed.requests] == [(False, 0)]
        await local.Approve(agent_pb2.ApproveRequest(grant=to_wire(deployment.grant(first))))
        reply = await local.ListEngineerKeys(agent_pb2.ListEngineerKeysRequest())
        (pin,) = reply.keys
        assert (pin.engineer, pin.key_id, pin.approver, pin.request_id, pin.grant_id) == \
            ("alice", key_of(first), "customer", "R-1", "G-1")
        assert pin.approver_key_id == p.key_id(deployment.approver.public_key())
        assert abs(pin.pinned_at - time.time()) < 60
    await agent.stop()

    forged = filed_by_another_key("R-2")
    deployment.receive(forged)
    agent = await start_agent()
    async with grpc.aio.insecure_channel(f"unix:{agent.socket}") as channel:
        local = agent_pb2_grpc.AgentLocalServiceStub(channel)
        assert await _pins(local) == [("alice", key_of(first))]  # survived the restart
        (row,) = (await local.ListRequests(agent_pb2.ListRequestsRequest())).requests
        assert (row.status, row.key_changed) == ("pending", True)
        assert [k.key_id for k in row.pinned_keys] == [key_of(first)]
        grant = deployment.grant(forged, "G-2")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await local.Approve(agent_pb2.ApproveRequest(grant=to_wire(grant)))
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        details = refused.value.details() or ""
        assert f"KEY CHANGED: alice's key was {key_of(first)}" in details
        assert key_of(forged) in details
        # Refused means nothing happened: no grant, still pending, no new pin.
        grants = await local.ListGrants(agent_pb2.ListGrantsRequest(include_inactive=True))
        assert [g.status for g in grants.grants] == ["active"]
        (row,) = (await local.ListRequests(agent_pb2.ListRequestsRequest())).requests
        assert row.status == "pending"
        assert (await local.Status(agent_pb2.StatusRequest())).unreported == 1
        accepted = await local.Approve(agent_pb2.ApproveRequest(
            grant=to_wire(grant), accept_new_key=True))
        assert accepted.grant_id == "G-2"
        assert await _pins(local) == [("alice", key_of(first)), ("alice", key_of(forged))]
    await agent.stop()

    agent = await start_agent()
    async with grpc.aio.insecure_channel(f"unix:{agent.socket}") as channel:
        local = agent_pb2_grpc.AgentLocalServiceStub(channel)
        assert await _pins(local) == [("alice", key_of(first)), ("alice", key_of(forged))]
        gone = await local.ForgetEngineerKeys(agent_pb2.ForgetEngineerKeysRequest(
            engineer="alice", key_id=key_of(forged)))
        assert [k.key_id for k in gone.forgotten] == [key_of(forged)]
        assert await _pins(local) == [("alice", key_of(first))]
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await local.ForgetEngineerKeys(agent_pb2.ForgetEngineerKeysRequest(engineer="bob"))
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as empty:
            await local.ForgetEngineerKeys(agent_pb2.ForgetEngineerKeysRequest())
        assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_rmagent_flags_refuses_and_accepts_a_changed_key(
        deployment: Deployment, start_agent: StartAgent) -> None:
    await start_agent()
    runner = CliRunner(env={"COLUMNS": "200"})

    async def rmagent(*args: str) -> Result:
        # The CLI runs its own event loop: give it a thread, as a separate process would.
        return await asyncio.to_thread(runner.invoke, app,
                                       ["--home", str(deployment.home), *args])

    assert (await rmagent("approver", "init", "--name", "ops")).exit_code == 0
    first = deployment.request("R-1")
    deployment.receive(first)
    approved = await rmagent("approve", "R-1", "--yes", "--approver", "ops", "--json")
    assert approved.exit_code == 0, approved.output
    assert json.loads(approved.stdout)["key_pinned"] is True
    (pin,) = json.loads((await rmagent("engineers", "--json")).stdout)["engineers"]
    assert (pin["engineer"], pin["key_id"], pin["approver"]) == ("alice", key_of(first), "ops")

    forged = filed_by_another_key("R-2")
    deployment.receive(forged)
    listed = await rmagent("requests", "--json")
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.stdout)["requests"]
    assert (row["request_id"], row["status"], row["key_changed"]) == ("R-2", "pending", True)
    assert [k["key_id"] for k in row["pinned_keys"]] == [key_of(first)]
    table = await rmagent("requests")
    assert f"KEY CHANGED: alice's key was {key_of(first)}" in table.stdout
    assert key_of(forged) in table.stdout

    refused = await rmagent("approve", "R-2", "--yes", "--approver", "ops")
    assert refused.exit_code == 1 and "KEY CHANGED" in refused.stderr
    assert "--accept-new-key" in refused.stderr
    accepted = await rmagent("approve", "R-2", "--yes", "--approver", "ops",
                             "--accept-new-key")
    assert accepted.exit_code == 0, accepted.output
    assert f"new key {key_of(forged)} accepted and pinned for alice" in accepted.stdout
    pins = json.loads((await rmagent("engineers", "--json")).stdout)["engineers"]
    assert [k["key_id"] for k in pins] == [key_of(first), key_of(forged)]

    forgot = await rmagent("engineers", "forget", "alice")
    assert forgot.exit_code == 0, forgot.output
    assert "no engineer key is pinned" in (await rmagent("engineers")).stdout


async def test_rmagent_flags_and_refuses_rival_keys_before_any_is_pinned(
        deployment: Deployment, start_agent: StartAgent) -> None:
    await start_agent()
    runner = CliRunner(env={"COLUMNS": "200"})

    async def rmagent(*args: str) -> Result:
        return await asyncio.to_thread(runner.invoke, app,
                                       ["--home", str(deployment.home), *args])

    assert (await rmagent("approver", "init", "--name", "ops")).exit_code == 0
    first, forged = deployment.request("R-1"), filed_by_another_key("R-2")
    deployment.receive(first)
    deployment.receive(forged)
    table = await rmagent("requests")
    assert table.exit_code == 0, table.output
    assert "KEY CONFLICT: no key is pinned for 'alice'" in table.stdout
    assert key_of(first) in table.stdout and key_of(forged) in table.stdout
    refused = await rmagent("approve", "R-2", "--yes", "--approver", "ops")
    assert refused.exit_code == 1 and "KEY CONFLICT" in refused.stderr
    assert json.loads((await rmagent("engineers", "--json")).stdout)["engineers"] == []
    denied = await rmagent("deny", "R-2", "--reason", "not alice's key", "--approver", "ops")
    assert denied.exit_code == 0, denied.output
    assert "KEY CONFLICT" not in (await rmagent("requests")).stdout
    approved = await rmagent("approve", "R-1", "--yes", "--approver", "ops")
    assert approved.exit_code == 0, approved.output
