"""The running daemon reads the customer's [diag] allowlists from agent.toml."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import grpc
import pytest

from agent import config as agent_config
from agent.diag.policy import DiagConfig
from pki.identity import Identity
from pki.tls import secure_channel
from rmaint.envelopes import to_wire
from rmaint.v1 import agent_pb2, agent_pb2_grpc
from tests.integration.agent.conftest import AGENT_ID, TD, Deployment, StartAgent


async def test_daemon_serves_files_under_the_configured_root_only(
        deployment: Deployment, start_agent: StartAgent, tmp_path: Path) -> None:
    root = tmp_path / "allowed"
    root.mkdir()
    (root / "app.conf").write_text("workers = 4\n")
    config = agent_config.load(deployment.home)
    agent_config.save(deployment.home, dataclasses.replace(
        config, diag=DiagConfig(file_roots=(str(root),))))
    agent = await start_agent()
    request = deployment.request("R-1", scopes=("diag.files",))
    deployment.receive(request)
    async with grpc.aio.insecure_channel(f"unix:{agent.socket}") as local_channel:
        local = agent_pb2_grpc.AgentLocalServiceStub(local_channel)
        await local.Approve(agent_pb2.ApproveRequest(grant=to_wire(deployment.grant(request))))
    server = Identity(TD, "agent", AGENT_ID)
    async with secure_channel(f"127.0.0.1:{agent.port}", deployment.controller, server) as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        allowed = deployment.operation(1, "files.stat", {"path": str(root / "app.conf")})
        reply = await stub.Execute(allowed, timeout=10)
        assert json.loads(reply.result_json)["size_bytes"] == len("workers = 4\n")
        outside = deployment.operation(2, "files.stat", {"path": "/etc/hostname"})
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Execute(outside, timeout=10)
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
