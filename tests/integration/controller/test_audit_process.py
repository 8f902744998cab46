"""The log under a real ``rmctl serve`` process: SIGKILL while appending loses no acknowledged
event and the log still verifies; a database restored from an older copy refuses to start."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest

import permissions as p
import tlog
from controller.audit.evidence import from_json
from controller.audit.keys import read_vkey
from controller.audit.records import decode
from controller.audit.verify import VERIFIED, verify_evidence
from controller.rules import MAX_PENDING_REQUESTS
from controller.server import serve
from controller.setup import init_deployment
from pki import certs
from pki.enroll import enroll
from pki.token import JoinToken
from rmaint.envelopes import to_wire
from rmaint.v1 import controller_pb2 as pb
from rmaint.v1 import controller_pb2_grpc as rpc
from tests.integration.controller._support import TD, Deployment, FakeClock, Person

RMCTL = [sys.executable, "-m", "controller.cli"]


class Served:
    """A deployment whose controller is a real ``rmctl serve`` process."""

    def __init__(self, home: Path, scratch: Path) -> None:
        self.home, self.scratch = home, scratch
        self.process: subprocess.Popen[bytes] | None = None
        self.d: Deployment | None = None

    async def start(self) -> None:
        log = self.home / "controller.log"
        mark = log.stat().st_size if log.exists() else 0
        with (self.scratch.parent / "serve.err").open("ab") as err:
            self.process = subprocess.Popen([*RMCTL, "--home", str(self.home), "serve"],
                                            stdout=subprocess.DEVNULL, stderr=err,
                                            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        started = await _logged(log, "controller.started", mark, self.process)
        port = int(started["address"].rsplit(":", 1)[1])
        enroll_port = int(started["enroll_address"].rsplit(":", 1)[1])
        running = SimpleNamespace(port=port, enroll_port=enroll_port)
        self.d = Deployment(self.home, running, FakeClock(time.time()), self.scratch)  # type: ignore[arg-type]  # only ports are read

    async def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.d is not None:
            await self.d.close()
            self.d = None
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            await asyncio.to_thread(self.process.wait, 30)
        self.process = None


async def _logged(path: Path, event: str, mark: int,
                  process: subprocess.Popen[bytes]) -> dict[str, str]:
    for _ in range(600):
        if path.exists():
            with path.open() as handle:
                handle.seek(mark)
                for line in handle:
                    record: dict[str, str] = json.loads(line)
                    if record["event"] == event:
                        return record
        if process.poll() is not None:
            raise AssertionError(f"serve exited {process.returncode}")
        await asyncio.sleep(0.05)
    raise AssertionError(f"{event} never logged in {path}")


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    home = tmp_path / "home"
    init_deployment(home, TD, listen="127.0.0.1:0", enroll_listen="127.0.0.1:0")
    server = Served(home, tmp_path / "people")
    await server.start()
    try:
        yield server
    finally:
        await server.stop(signal.SIGKILL)


async def _world(d: Deployment, agents: int = 1) -> tuple[Person, str]:
    """Customer acme, agents web-1 .. web-N, engineer alice with an open case;
    (alice, case id)."""
    admin = rpc.AdminServiceStub(d.channel(d.admin()))
    await admin.AddCustomer(pb.AddCustomerRequest(customer=pb.Customer(
        customer_id="acme", name="Acme", contract_start="2020-01-01", contract_end="2099-12-31")))
    for n in range(1, agents + 1):
        token = await admin.CreateJoinToken(pb.CreateJoinTokenRequest(
            role="agent", subject=f"web-{n}", customer_id="acme"))
        await enroll(JoinToken.decode(token.token), certs.generate_key(),
                     agent_address="127.0.0.1:9")
    alice = d.person("engineer", "alice")
    case = await rpc.CaseServiceStub(d.channel(alice)).OpenCase(pb.OpenCaseRequest(
        customer_id="acme", title="slow"))
    return alice, case.case.case_id


async def _request(d: Deployment, alice: Person, case_id: str, request_id: str,
                   agent_id: str = "web-1") -> str:
    envelope = p.request_access(alice.key, request_id=request_id, case_id=case_id,
                                agent_id=agent_id, engineer="alice", scopes=["diag.read"],
                                duration_seconds=600, reason="load", now=int(time.time()))
    await rpc.EngineerServiceStub(d.channel(alice)).RequestAccess(
        pb.RequestAccessRequest(request=to_wire(envelope)))
    return request_id


async def _full_evidence(d: Deployment) -> bytes:
    audit = rpc.AuditServiceStub(d.channel(d.person("auditor", "bob")))
    return b"".join([chunk.data async for chunk in audit.GetEvidence(
        pb.GetEvidenceRequest(full=True), timeout=60)])


async def test_sigkill_while_appending_loses_no_acknowledged_event(served: Served) -> None:
    assert served.d is not None
    # One engineer keeps MAX_PENDING_REQUESTS undecided at an agent: spread over agents.
    agents = -(-200 // MAX_PENDING_REQUESTS)
    alice, case_id = await _world(served.d, agents)
    acknowledged: list[str] = []

    async def append_forever(worker: int) -> None:
        assert served.d is not None
        for n in range(10_000):
            agent_id = f"web-{(worker + 8 * n) % agents + 1}"
            try:
                acknowledged.append(await _request(served.d, alice, case_id,
                                                   f"R-{worker}-{n}", agent_id))
            except grpc.aio.AioRpcError:
                return  # the controller died under this call: not acknowledged

    workers = [asyncio.create_task(append_forever(w)) for w in range(8)]
    while len(acknowledged) < 150:
        # Every worker stopped short (a refusal, not a kill): fail, do not wait forever.
        assert not all(w.done() for w in workers), f"{len(acknowledged)} acknowledged"
        await asyncio.sleep(0.01)
    assert served.process is not None
    served.process.send_signal(signal.SIGKILL)  # mid-append: calls are in flight
    await asyncio.gather(*workers)
    await served.stop()

    await served.start()  # refuses to start if the log went backwards
    assert served.d is not None
    evidence = from_json(await _full_evidence(served.d))
    key = read_vkey((served.home / "log.vkey").read_text())
    report = verify_evidence(evidence, key)
    assert report.status == VERIFIED, report.faults[:3]
    logged = {decode(r.record).details["request"] for r in evidence.records
              if decode(r.record).kind == "consent.requested"}
    assert set(acknowledged) <= logged


async def test_a_database_restored_from_an_older_copy_refuses_to_start(served: Served,
                                                                       tmp_path: Path) -> None:
    assert served.d is not None
    alice, case_id = await _world(served.d)
    await _request(served.d, alice, case_id, "R-1")
    await served.stop()  # signs its last checkpoint on the way out
    backup = tmp_path / "backup"
    backup.mkdir()
    for name in ("controller.db", "controller.db-wal", "controller.db-shm"):
        if (served.home / name).exists():
            shutil.copy2(served.home / name, backup / name)

    await served.start()
    assert served.d is not None
    alice = served.d.person("engineer", "alice")
    await _request(served.d, alice, case_id, "R-2")
    await served.stop()

    for name in ("controller.db", "controller.db-wal", "controller.db-shm"):
        (served.home / name).unlink(missing_ok=True)
        if (backup / name).exists():
            shutil.copy2(backup / name, served.home / name)
    refused = await asyncio.to_thread(
        subprocess.run, [*RMCTL, "--home", str(served.home), "serve"], capture_output=True,
        text=True, timeout=60, check=False)
    assert refused.returncode == 1
    assert "error:" in refused.stderr and "fewer than" in refused.stderr, refused.stderr


async def test_a_deployment_without_a_log_key_gets_one_on_first_serve(tmp_path: Path) -> None:
    home = tmp_path / "home"
    init_deployment(home, TD, listen="127.0.0.1:0", enroll_listen="127.0.0.1:0")
    assert (home / "log.key").stat().st_mode & 0o777 == 0o600
    (home / "log.key").unlink()  # as a deployment made before the log had a key
    (home / "log.vkey").unlink()
    running = await serve(home, log_to_stderr=False)
    await running.stop()
    assert (home / "log.key").stat().st_mode & 0o777 == 0o600
    events = [json.loads(line) for line in (home / "controller.log").read_text().splitlines()]
    created = [e for e in events if e["event"] == "audit.log_key_created"]
    assert len(created) == 1 and created[0]["key"] == (home / "log.vkey").read_text().strip()
    secret = (home / "log.key").read_text().splitlines()[1]
    assert secret not in (home / "controller.log").read_text()
    key = read_vkey((home / "log.vkey").read_text())
    kept = tlog.open_checkpoint((home / "log-checkpoint").read_bytes(), [key],
                                origin=f"{TD}/controller-log").checkpoint
    assert (kept.size, kept.root_hash) == (0, tlog.EMPTY_ROOT)
