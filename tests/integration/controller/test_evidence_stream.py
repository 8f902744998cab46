"""Evidence larger than one gRPC message (4 MiB) under a real controller: a case with
thousands of logged events is exported, checked offline and verified through the real
``rmctl`` commands; a stream that ends early, or one over the client's limit, is an error
and writes nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from controller.audit.records import Event
from controller.client.api import ControllerClient
from controller.client.config import load_config, read_toml, write_client_section
from controller.client.errors import BadAnswer, NotFound
from controller.config import HomeFiles
from controller.server import serve
from controller.setup import init_deployment
from controller.store import Store, auditlog
from pki.tls import MAX_MESSAGE, TlsFiles, server_credentials, server_options
from rmaint.v1 import controller_pb2 as pb
from rmaint.v1 import controller_pb2_grpc as rpc
from tests.integration.controller._support import TD, FakeClock

RMCTL = [sys.executable, "-m", "controller.cli"]
CASE = "C-9001"
EVENTS = 1600
REASON = "r" * 2000  # each record ~2 KiB: the case's evidence is well over 4 MiB


def _fill(home: Path) -> None:
    """EVENTS consent records of CASE, through the log's own append path (one batch)."""
    url = f"sqlite:///{home}/controller.db"
    store = Store.open(url)
    try:
        events = [Event("consent.requested", 1_700_000_000 + i, CASE, "alice",
                        details={"request": f"R-{i}", "reason": REASON}) for i in range(EVENTS)]
        store.write_sync(auditlog.append_many, events)
    finally:
        store.close()


def _point_at(home: Path, address: str) -> None:
    """The home's [client] controller address (the controller listened on port 0)."""
    section = read_toml(home)["client"]
    write_client_section(home, {**section, "controller": address})


def _rmctl(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RMCTL, "--home", str(home), *args], capture_output=True,
                          text=True, timeout=120,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})


async def _covered(home: Path, size: int) -> None:
    """Wait for the controller's checkpointer (1 s) to sign over the filled log."""
    store = Store.open(f"sqlite:///{home}/controller.db")
    try:
        for _ in range(200):
            latest = await store.read(auditlog.latest_checkpoint)
            if latest is not None and latest.size >= size:
                return
            await asyncio.sleep(0.05)
    finally:
        store.close()
    raise AssertionError("no checkpoint covers the filled log")


class CutShort(rpc.AuditServiceServicer):
    """A controller that announces the whole evidence and stops after its first chunk: the
    broken or hostile peer this test needs (a real one only ends early when it dies)."""

    def __init__(self, evidence: bytes, cut: int) -> None:
        self.evidence, self.cut = evidence, cut

    async def GetLogKey(self, request: pb.GetLogKeyRequest,
                        context: grpc.aio.ServicerContext) -> pb.GetLogKeyResponse:
        raise AssertionError("the key is pinned already")

    async def GetEvidence(self, request: pb.GetEvidenceRequest,
                          context: grpc.aio.ServicerContext) -> AsyncIterator[pb.EvidenceChunk]:
        yield pb.EvidenceChunk(data=self.evidence[:self.cut], total_size=len(self.evidence),
                               sha256=hashlib.sha256(self.evidence).hexdigest())


async def _cut_short_server(home: Path, evidence: bytes) -> tuple[grpc.aio.Server, str]:
    files = HomeFiles.of(home)
    server = grpc.aio.server(options=server_options())
    rpc.add_AuditServiceServicer_to_server(CutShort(evidence, 1024 * 1024), server)
    port = server.add_secure_port("127.0.0.1:0", server_credentials(
        TlsFiles(files.key, files.cert, files.ca_cert)))
    await server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture
async def home(tmp_path: Path) -> AsyncIterator[Path]:
    """A deployment with CASE's events logged, its controller serving (the home is the
    admin's, who may read the log's evidence)."""
    home = tmp_path / "home"
    init_deployment(home, TD, listen="127.0.0.1:0", enroll_listen="127.0.0.1:0")
    _fill(home)
    running = await serve(home, clock=FakeClock(time.time()), sweep_interval=3600,
                          log_to_stderr=False)
    try:
        _point_at(home, f"127.0.0.1:{running.port}")
        await _covered(home, EVENTS)
        yield home
    finally:
        await running.stop()


async def test_evidence_over_one_message_exports_and_verifies(home: Path,
                                                              tmp_path: Path) -> None:
    bundle = tmp_path / "case.json"
    done = await asyncio.to_thread(_rmctl, home, "audit", "export", "--case", CASE,
                                   "-o", str(bundle), "--json")
    assert done.returncode == 0, done.stderr
    assert bundle.stat().st_size > MAX_MESSAGE
    assert json.loads(done.stdout)["records"] == EVENTS
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]

    offline = await asyncio.to_thread(_rmctl, home, "audit", "verify-bundle", str(bundle),
                                      "--json")
    assert offline.returncode == 0, offline.stdout + offline.stderr
    assert json.loads(offline.stdout)["status"] == "verified"

    online = await asyncio.to_thread(_rmctl, home, "audit", "verify", "--case", CASE, "--json")
    assert online.returncode == 0, online.stdout + online.stderr
    assert json.loads(online.stdout)["records"] == EVENTS

    # A stream that ends after its first chunk is an error, and nothing is written.
    evidence = bundle.read_bytes()
    server, address = await _cut_short_server(home, evidence)
    try:
        config = dataclasses.replace(load_config(home), controller=address)
        async with ControllerClient.open(config) as client:
            with pytest.raises(BadAnswer, match=r"ended early: 1048576 of \d+ bytes"):
                await client.evidence(pb.GetEvidenceRequest(case_id=CASE))
        _point_at(home, address)
        cut = tmp_path / "cut.json"
        refused = await asyncio.to_thread(_rmctl, home, "audit", "export", "--case", CASE,
                                          "-o", str(cut))
        # Not a failed check (1): the evidence never arrived whole, so nothing was checked.
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "ended early" in refused.stderr and "Traceback" not in refused.stderr
        assert not cut.exists()
    finally:
        await server.stop(None)


async def test_evidence_over_the_clients_limit_is_refused(home: Path) -> None:
    async with ControllerClient.open(load_config(home)) as client:
        whole = await client.evidence(pb.GetEvidenceRequest(case_id=CASE))
        assert len(whole) > MAX_MESSAGE
        with pytest.raises(BadAnswer, match="over this client's limit"):
            await client.evidence(pb.GetEvidenceRequest(case_id=CASE), limit=len(whole) - 1)
        with pytest.raises(NotFound, match="no logged events"):  # refused before any chunk
            await client.evidence(pb.GetEvidenceRequest(case_id="C-0404"))
