"""SIGKILL a real ``rmagent run`` under a load of operations, restart it: every operation
the controller got a receipt for is in the log, exactly as receipted, and ``rmagent
verify-log`` passes (record before act: an entry commits before its receipt leaves)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import grpc
from typer.testing import CliRunner

import permissions as p
from agent import config as agent_config
from agent.cli import app
from agent.config import AgentPaths
from pki.identity import Identity
from pki.tls import secure_channel
from rmaint.envelopes import from_wire, to_wire
from rmaint.v1 import agent_pb2, agent_pb2_grpc
from tests.integration.agent.conftest import AGENT_ID, TD, Deployment, closed_port

RMAGENT = Path(sys.executable).parent / "rmagent"
WORKERS = 3
KILL_AFTER = 24  # receipts; the kill lands while every worker has an operation in flight


def _start(home: Path, port: int) -> subprocess.Popen[bytes]:
    """The daemon, once it serves and has said so (then SIGTERM stops it cleanly)."""
    log = AgentPaths.of(home, agent_config.load(home)).daemon_log
    said = log.read_text().count("rmagent serving") if log.exists() else 0
    proc = subprocess.Popen([str(RMAGENT), "--home", str(home), "run"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 20
    while not _listening(port) or not log.exists() \
            or log.read_text().count("rmagent serving") == said:
        assert proc.poll() is None, "rmagent exited at start"
        assert time.monotonic() < deadline, "rmagent did not start listening"
        time.sleep(0.05)
    return proc


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


async def _load(deployment: Deployment, stub: agent_pb2_grpc.AgentServiceStub, worker: int,
                receipts: list[p.Receipt], enough: asyncio.Event) -> None:
    """Operations of one session, one after another, until the agent stops answering."""
    for seq in range(1, 10_000):
        statement = p.Operation(session_id=f"S-kill{worker:08d}", seq=seq, grant_id="G-1",
                                agent_id=AGENT_ID, case_id="C-0001", operation="diag.system",
                                params={}, issued_at=int(time.time()))
        envelope = p.sign(p.OPERATION, statement.to_payload(), deployment.engineer_key)
        try:
            reply = await stub.Execute(agent_pb2.ExecuteRequest(operation=to_wire(envelope)),
                                       timeout=10)
        except grpc.aio.AioRpcError:
            return  # killed
        receipt = p.Receipt.from_payload(from_wire(reply.receipt).payload)
        assert receipt.operation_digest == p.digest(envelope)
        receipts.append(receipt)
        if len(receipts) >= KILL_AFTER:
            enough.set()


async def test_sigkill_under_load_loses_no_receipted_operation(deployment: Deployment) -> None:
    home, port = deployment.home, closed_port()
    agent_config.save(home, dataclasses.replace(agent_config.load(home),
                                                listen=f"127.0.0.1:{port}"))
    proc = _start(home, port)
    try:
        request = deployment.request()
        deployment.receive(request)
        async with grpc.aio.insecure_channel(f"unix:{home / 'rmagent.sock'}") as local:
            await agent_pb2_grpc.AgentLocalServiceStub(local).Approve(
                agent_pb2.ApproveRequest(grant=to_wire(deployment.grant(request))))
        channel = secure_channel(f"127.0.0.1:{port}", deployment.controller,
                                 Identity(TD, "agent", AGENT_ID))
        async with channel:
            stub = agent_pb2_grpc.AgentServiceStub(channel)
            receipts: list[p.Receipt] = []
            enough = asyncio.Event()
            load = [asyncio.create_task(_load(deployment, stub, w, receipts, enough))
                    for w in range(WORKERS)]
            await asyncio.wait_for(enough.wait(), 30)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            await asyncio.gather(*load)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)

    restarted = _start(home, port)  # the log opens and the daemon serves again
    restarted.send_signal(signal.SIGTERM)
    assert restarted.wait(20) == 0

    done = CliRunner().invoke(app, ["--home", str(home), "verify-log", "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["checkpoint"]["size"] == json.loads(done.output)["entries"]
    conn = sqlite3.connect(home / "agent-log.db")
    try:
        for receipt in receipts:
            attempt = conn.execute("SELECT session_id, seq, operation_digest, outcome FROM "
                                   "entries WHERE id = ?", (receipt.log_index,)).fetchone()
            assert attempt == (receipt.session_id, receipt.seq, receipt.operation_digest,
                               "allowed")
            result = conn.execute("SELECT outcome, result_digest FROM entries WHERE "
                                  "attempt_id = ?", (receipt.log_index,)).fetchone()
            assert result == ("ok", receipt.result_digest)
    finally:
        conn.close()
    assert len(receipts) >= KILL_AFTER
