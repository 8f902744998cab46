"""The real daemon on loopback: mTLS Execute for the controller only, local consent."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

import permissions as p
from agent import config as agent_config
from agent import state as state_module
from agent.daemon import AgentHandle
from agent.errors import Refused
from agent.local_client import DaemonRefused, LocalClient
from agent.state import StateStore
from pki.files import read_cert
from rmaint.envelopes import from_wire, to_wire
from rmaint.v1 import agent_pb2
from tests.integration.agent.conftest import Clients, Deployment, StartAgent


async def approve(deployment: Deployment, clients: Clients, request_id: str = "R-1",
                  grant_id: str = "G-1") -> agent_pb2.ApproveResponse:
    request = deployment.request(request_id)
    deployment.receive(request)
    grant = deployment.grant(request, grant_id)
    return await clients.local.Approve(agent_pb2.ApproveRequest(grant=to_wire(grant)))


async def test_controller_executes_over_mtls_and_gets_a_signed_receipt(
        deployment: Deployment, clients: Clients, agent: AgentHandle) -> None:
    approved = await approve(deployment, clients)
    assert approved.grant_id == "G-1" and not approved.reported  # controller unreachable
    request = deployment.operation(1)
    reply = await clients.controller.Execute(request, timeout=10)
    result = json.loads(reply.result_json)
    assert result["cpu"]["logical"] >= 1
    agent_key = read_cert(deployment.home / "agent.crt").public_key()
    keys = {p.key_id(agent_key): agent_key}  # type: ignore[arg-type]
    receipt = p.Receipt.from_payload(p.verify(from_wire(reply.receipt), p.RECEIPT, keys))
    assert receipt.operation_digest == p.digest(from_wire(request.operation))
    assert (receipt.outcome, receipt.seq, receipt.agent_id) == ("ok", 1, "web-1")
    # The same operation again is a replay.
    with pytest.raises(grpc.aio.AioRpcError) as replay:
        await clients.controller.Execute(request, timeout=10)
    assert replay.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert replay.value.details() == "permission denied"


async def test_engineer_certificate_cannot_execute(deployment: Deployment,
                                                   clients: Clients) -> None:
    await approve(deployment, clients)
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await clients.engineer.Execute(deployment.operation(1), timeout=10)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert denied.value.details() == "permission denied"
    # Health is open to any verified peer.
    health = health_pb2_grpc.HealthStub(clients.channels["engineer"])
    reply = await health.Check(health_pb2.HealthCheckRequest(service="rmaint.v1.AgentService"))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    listed = await health.List(health_pb2.HealthListRequest())
    assert listed.statuses["rmaint.v1.AgentService"].status == reply.status
    # The engineer's attempt never reached the dispatcher: nothing was recorded or consumed.
    await clients.controller.Execute(deployment.operation(1), timeout=10)


async def test_unknown_and_local_methods_are_denied_over_the_network(
        clients: Clients, caplog: pytest.LogCaptureFixture) -> None:
    channel = clients.channels["controller"]
    long_name = "/no.such.Service/" + "x" * 7000  # the caller picks it: it is logged short
    caplog.set_level(logging.WARNING, logger="agent")
    for method in ("/rmaint.v1.AgentLocalService/Status",
                   "/rmaint.v1.AgentLocalService/ForgetEngineerKeys",
                   "/rmaint.v1.AgentLocalService/ListEngineerKeys", "/no.such.Service/Call",
                   long_name):
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await channel.unary_unary(method)(b"", timeout=10)
        assert (denied.value.code(), denied.value.details()) == \
            (grpc.StatusCode.PERMISSION_DENIED, "permission denied")
    logged = [r.fields["method"] for r in caplog.records  # type: ignore[attr-defined]
              if r.getMessage() == "call refused"]
    assert logged[-1] == long_name[:200] and len(logged) == 5


async def test_a_connection_that_never_shakes_hands_is_closed(agent: AgentHandle) -> None:
    # Each holds a file descriptor: silent ones must not pile up until calls fail.
    from pki.tls import HANDSHAKE_TIMEOUT_MS

    silent = socket.create_connection(("127.0.0.1", agent.port))
    silent.settimeout(HANDSHAKE_TIMEOUT_MS / 1000 + 20)
    started = time.monotonic()
    try:
        assert await asyncio.to_thread(silent.recv, 1) == b""  # closed by the server
    finally:
        silent.close()
    assert time.monotonic() - started < HANDSHAKE_TIMEOUT_MS / 1000 + 10


async def test_reflection_lists_the_services(clients: Clients) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(clients.channels["controller"])
    call = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(
        list_services="")]))
    names = set()
    async for reply in call:
        names |= {s.name for s in reply.list_services_response.service}
    assert {"rmaint.v1.AgentService", "grpc.health.v1.Health"} <= names


async def test_operation_without_a_grant_is_denied(deployment: Deployment,
                                                   clients: Clients) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await clients.controller.Execute(deployment.operation(1), timeout=10)
    assert (denied.value.code(), denied.value.details()) == \
        (grpc.StatusCode.PERMISSION_DENIED, "permission denied")


async def test_malformed_and_oversized_input_fail_cleanly(
        deployment: Deployment, clients: Clients, agent: AgentHandle) -> None:
    await approve(deployment, clients)
    raw = clients.channels["controller"].unary_unary("/rmaint.v1.AgentService/Execute")
    with pytest.raises(grpc.aio.AioRpcError) as garbage:
        await raw(b"\xff\xff\xff\xff", timeout=10)
    assert garbage.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert garbage.value.details() == "malformed request: not a valid protobuf message"
    with pytest.raises(grpc.aio.AioRpcError) as empty:
        await clients.controller.Execute(agent_pb2.ExecuteRequest(), timeout=10)
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as params:
        await clients.controller.Execute(
            deployment.operation(1, "diag.processes", {"limit": 1000}), timeout=10)
    assert params.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "limit" in (params.value.details() or "")
    big = await _send_oversized(deployment, agent)
    assert big == grpc.StatusCode.RESOURCE_EXHAUSTED
    reply = await clients.controller.Execute(deployment.operation(2), timeout=10)
    assert json.loads(reply.result_json)["hostname"]


async def _send_oversized(deployment: Deployment, agent: AgentHandle) -> grpc.StatusCode:
    files = deployment.controller
    key, cert, ca = files.read()
    creds = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key,
                                         certificate_chain=cert)
    options = [("grpc.ssl_target_name_override", "web-1.agent.example.test"),
               ("grpc.max_send_message_length", 16 * 1024 * 1024)]
    async with grpc.aio.secure_channel(f"127.0.0.1:{agent.port}", creds,
                                       options=options) as channel:
        raw = channel.unary_unary("/rmaint.v1.AgentService/Execute")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await raw(b"\x0a" + b"\x00" * (5 * 1024 * 1024), timeout=10)
        return refused.value.code()


async def test_local_revoke_cancels_a_running_operation_within_a_second(
        deployment: Deployment, clients: Clients, agent: AgentHandle) -> None:
    await approve(deployment, clients)
    running = asyncio.ensure_future(clients.controller.Execute(
        deployment.operation(1, "diag.processes", {"interval": 5}), timeout=20))
    while (await clients.local.Status(agent_pb2.StatusRequest())).operations_in_flight == 0:
        await asyncio.sleep(0.02)
    grant = p.Grant.from_payload(deployment.grant(deployment.request()).payload)
    revocation = p.revoke(grant, deployment.approver, reason="enough", now=int(time.time()))
    started = time.monotonic()
    reply = await clients.local.Revoke(agent_pb2.RevokeRequest(revocation=to_wire(revocation)))
    with pytest.raises(grpc.aio.AioRpcError) as cancelled:
        await running
    assert time.monotonic() - started < 1.0
    assert reply.cancelled_operations == 1
    assert cancelled.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as after:
        await clients.controller.Execute(deployment.operation(2), timeout=10)
    assert after.value.code() == grpc.StatusCode.PERMISSION_DENIED
    grants = await clients.local.ListGrants(agent_pb2.ListGrantsRequest(include_inactive=True))
    assert [g.status for g in grants.grants] == ["revoked"]
    assert not (await clients.local.ListGrants(agent_pb2.ListGrantsRequest())).grants


async def test_local_service_checks_consent(deployment: Deployment, clients: Clients,
                                            agent: AgentHandle) -> None:
    request = deployment.request("R-7")
    rogue = p.approve(p.verify_access_request(request), ed25519.Ed25519PrivateKey.generate(),
                      grant_id="G-7", now=int(time.time()))
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await clients.local.Approve(agent_pb2.ApproveRequest(
            grant=to_wire(deployment.grant(request, "G-7"))))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    deployment.receive(request)
    with pytest.raises(grpc.aio.AioRpcError) as unpinned:
        await clients.local.Approve(agent_pb2.ApproveRequest(grant=to_wire(rogue)))
    assert unpinned.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    pending = await clients.local.ListRequests(agent_pb2.ListRequestsRequest())
    assert [r.status for r in pending.requests] == ["pending"]
    denial = p.deny(p.verify_access_request(request), deployment.approver, reason="not today",
                    now=int(time.time()))
    denied = await clients.local.Deny(agent_pb2.DenyRequest(denial=to_wire(denial)))
    assert not denied.reported
    everything = await clients.local.ListRequests(
        agent_pb2.ListRequestsRequest(include_decided=True, sync=True))
    assert [r.status for r in everything.requests] == ["denied"]
    assert everything.sync_error  # the controller is unreachable, and says so
    status = await clients.local.Status(agent_pb2.StatusRequest())
    assert (status.agent_id, status.listen, status.unreported) == \
        ("web-1", f"127.0.0.1:{agent.port}", 1)
    assert list(status.approver_key_ids) == [p.key_id(deployment.approver.public_key())]


async def test_socket_is_private_and_reclaimed_after_restart(
        deployment: Deployment, start_agent: object, agent: AgentHandle) -> None:
    assert stat.S_IMODE(agent.socket.stat().st_mode) == 0o600
    await agent.stop()
    assert not agent.socket.exists()
    again = await start_agent()  # type: ignore[operator]
    assert again.socket.exists()


async def test_concurrent_decisions_on_one_request_have_one_winner(
        deployment: Deployment, clients: Clients, agent: AgentHandle,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Approve, Approve (another grant) and Deny at once: exactly one is stored."""
    # All three pass their "pending" check before any of them writes: each write waits
    # in its worker thread until the other two have arrived.
    arrived = threading.Barrier(3, timeout=10)
    for name in ("store_grant", "store_denial"):
        real = getattr(StateStore, name)

        def together(self: StateStore, *args: Any, _real: Any = real, **kwargs: Any) -> Any:
            arrived.wait()
            return _real(self, *args, **kwargs)
        monkeypatch.setattr(StateStore, name, together)
    request = deployment.request("R-9")
    deployment.receive(request)
    asked = p.verify_access_request(request)
    outcomes = await asyncio.gather(
        clients.local.Approve(agent_pb2.ApproveRequest(
            grant=to_wire(deployment.grant(request, "G-9a")))),
        clients.local.Approve(agent_pb2.ApproveRequest(
            grant=to_wire(deployment.grant(request, "G-9b")))),
        clients.local.Deny(agent_pb2.DenyRequest(denial=to_wire(
            p.deny(asked, deployment.approver, reason="no", now=int(time.time()))))),
        return_exceptions=True)
    won = [o for o in outcomes if not isinstance(o, BaseException)]
    lost = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(won) == 1 and len(lost) == 2, outcomes
    assert [(e.code(), e.details()) for e in lost] == \
        [(grpc.StatusCode.FAILED_PRECONDITION, "request R-9 is no longer pending")] * 2
    listed = await clients.local.ListRequests(agent_pb2.ListRequestsRequest(include_decided=True))
    grants = await clients.local.ListGrants(agent_pb2.ListGrantsRequest(include_inactive=True))
    status = await clients.local.Status(agent_pb2.StatusRequest())
    [row] = listed.requests
    expected = "approved" if isinstance(won[0], agent_pb2.ApproveResponse) else "denied"
    assert row.status == expected
    assert len(grants.grants) == (1 if expected == "approved" else 0)
    assert status.unreported == 1


async def test_unexpected_errors_leave_as_internal_error_and_are_logged(
        deployment: Deployment, clients: Clients, agent: AgentHandle,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    async def broken(message: object) -> object:
        raise RuntimeError("cannot open /etc/rmaint/secret-path")

    monkeypatch.setattr(agent.dispatcher, "execute", broken)
    with caplog.at_level(logging.ERROR, logger="agent.rpc"), \
            pytest.raises(grpc.aio.AioRpcError) as failed:
        await clients.controller.Execute(deployment.operation(1), timeout=10)
    assert (failed.value.code(), failed.value.details()) == \
        (grpc.StatusCode.INTERNAL, "internal error")
    [record] = [r for r in caplog.records if r.name == "agent.rpc"]
    assert record.exc_info is not None and "secret-path" in str(record.exc_info[1])


async def test_revocation_that_cannot_be_saved_says_so_and_is_saved_later(
        deployment: Deployment, start_agent: StartAgent, monkeypatch: pytest.MonkeyPatch
        ) -> None:
    monkeypatch.setattr(state_module, "BUSY_TIMEOUT", 0.2)
    handle = await start_agent()
    request = deployment.request()
    deployment.receive(request)
    grant = deployment.grant(request)
    async with LocalClient(handle.socket) as local:
        await local.approve(grant)
        revocation = p.revoke(p.Grant.from_payload(grant.payload), deployment.approver,
                              reason="stop", now=int(time.time()))
        blocker = sqlite3.connect(deployment.home / "state.db", isolation_level=None)
        try:
            blocker.execute("BEGIN EXCLUSIVE")
            with pytest.raises(DaemonRefused) as refused:
                await local.revoke(revocation)
            message = str(refused.value)
            assert message.startswith("the revocation of grant G-1 is in force now but not "
                                      "yet saved (")
            assert "keep the agent running until 'rmagent grants --all' shows G-1 revoked" \
                in message
            assert handle.dispatcher.unsaved_revocations() == {"G-1"}
            [known] = await local.list_grants(include_inactive=True)
            assert known.status == "revoked (not yet saved)"  # and denied already:
            with pytest.raises(Refused, match="grant-revoked"):
                await handle.dispatcher.execute(deployment.operation(1).operation)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        deadline = time.monotonic() + 10
        while handle.dispatcher.unsaved_revocations() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        [known] = await local.list_grants(include_inactive=True)
        assert known.status == "revoked"
    await handle.stop()
    again = await start_agent()
    with pytest.raises(Refused, match="grant-revoked"):
        await again.dispatcher.execute(deployment.operation(2).operation)


async def test_a_start_without_an_approver_says_none_can_approve(
        deployment: Deployment, start_agent: StartAgent,
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="agent.daemon"):
        await (await start_agent()).stop()  # the deployment pins approver "customer"
        assert not [r for r in caplog.records if "no approver" in r.getMessage()]
        config = agent_config.load(deployment.home)
        agent_config.save(deployment.home, dataclasses.replace(config, approvers=()))
        await start_agent()
    said = [r.getMessage() for r in caplog.records if "no approver" in r.getMessage()]
    # The command names this home, so that it works when pasted.
    assert said == ["no approver key is pinned: no request can be approved until "
                    f"'rmagent --home {deployment.home} approver init' makes one"]


def test_a_port_in_use_is_one_line_and_exit_1(deployment: Deployment) -> None:
    config = agent_config.load(deployment.home)
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        listen = f"127.0.0.1:{held.getsockname()[1]}"
        agent_config.save(deployment.home, dataclasses.replace(config, listen=listen))
        done = subprocess.run([str(Path(sys.executable).parent / "rmagent"), "--home",
                               str(deployment.home), "run"],
                              capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    lines = done.stderr.splitlines()  # the daemon's JSON log lines, then the error
    assert lines[-1] == f"error: cannot listen on {listen}: address already in use"
    assert all(line.startswith("{") for line in lines[:-1]), done.stderr  # no gRPC core line
