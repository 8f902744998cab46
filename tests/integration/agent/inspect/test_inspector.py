"""The inspection schedule with a fake clock: recorded in the agent log before and after,
skipped when the log cannot be written, queued durably and delivered when the controller
answers again."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from agent.diag.policy import DiagConfig
from agent.inspect.profile import InspectProfile
from agent.inspect.report import Reporter, ReportQueue
from agent.inspect.scheduler import OPERATION, Inspector
from agent.log import OperationLog
from pki.tls import TlsFiles, server_credentials, server_options
from rmaint.v1 import controller_pb2, controller_pb2_grpc
from tests.integration.agent.conftest import TD, Deployment, closed_port

PROFILE = InspectProfile(enabled=True, interval_seconds=60, memory_percent=0.1)


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if len(self.sleeps) >= 3:
            raise asyncio.CancelledError


@dataclass
class FakeController(controller_pb2_grpc.AgentReportServiceServicer):
    runs: list[controller_pb2.InspectionRun] = field(default_factory=list)

    async def ReportInspection(self, request: controller_pb2.ReportInspectionRequest,
                               context: grpc.aio.ServicerContext
                               ) -> controller_pb2.ReportInspectionResponse:
        self.runs.append(request.run)
        return controller_pb2.ReportInspectionResponse(server_time=time.time() - 42)


@dataclass
class Parts:
    log: OperationLog
    queue: ReportQueue
    reporter: Reporter
    port: int
    deployment: Deployment


@pytest.fixture
async def parts(deployment: Deployment, tmp_path: Path) -> AsyncIterator[Parts]:
    port = closed_port()
    log = OperationLog(tmp_path / "agent-log.db")
    queue = ReportQueue(tmp_path / "inspect-outbox.db")
    home = deployment.home
    files = TlsFiles(home / "agent.key", home / "agent.crt", home / "ca.crt")
    reporter = Reporter(queue, controller=f"127.0.0.1:{port}", trust_domain=TD, files=files,
                        rpc_timeout=2.0)
    yield Parts(log, queue, reporter, port, deployment)
    await reporter.close()
    queue.close()
    log.close()


def _inspector(parts: Parts, clock: FakeClock | None = None) -> Inspector:
    clock = clock or FakeClock(time.time())
    return Inspector(profile=PROFILE, diag=DiagConfig(), log=parts.log,
                     reporter=parts.reporter, clock=clock, sleep=clock.sleep)


async def test_runs_follow_the_schedule_and_are_logged_before_and_after(parts: Parts) -> None:
    clock = FakeClock(1_800_000_000.0)
    inspector = _inspector(parts, clock)
    with pytest.raises(asyncio.CancelledError):
        await inspector.run()
    assert inspector.runs == 3 and clock.sleeps == [60.0, 60.0, 60.0]
    entries = parts.log.entries()
    attempts = [e for e in entries if e.kind == "attempt"]
    assert [e.at for e in attempts] == [1_800_000_000.0 + 60 * i for i in range(3)]
    assert all(e.operation == OPERATION and e.engineer is None and e.outcome == "allowed"
               for e in attempts)
    assert json.loads(attempts[0].params_json or "")["scope"] == "inspect"
    results = [e for e in entries if e.kind == "result"]
    assert [r.attempt_id for r in results] == [a.id for a in attempts]
    assert all("1 finding(s)" in r.detail for r in results)


async def test_a_run_is_skipped_when_the_log_cannot_be_written(
        parts: Parts, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broken = OperationLog(tmp_path / "broken.db")
    broken.close()
    inspector = Inspector(profile=PROFILE, diag=DiagConfig(), log=broken,
                          reporter=parts.reporter)
    assert await inspector.run_once() is None
    assert inspector.runs == 0 and parts.queue.count() == 0
    assert "inspection run skipped" in caplog.text


async def test_offline_runs_are_queued_then_delivered_in_order(parts: Parts) -> None:
    inspector = _inspector(parts)
    first = await inspector.run_once()
    second = await inspector.run_once()
    assert first is not None and second is not None
    assert parts.queue.count() == 2 and parts.reporter.last_error
    fake = FakeController()  # type: ignore[abstract]  # only ReportInspection is called
    server = grpc.aio.server(options=server_options())
    controller_pb2_grpc.add_AgentReportServiceServicer_to_server(fake, server)
    server.add_secure_port(f"127.0.0.1:{parts.port}",
                           server_credentials(parts.deployment.controller))
    await server.start()
    try:
        third = await inspector.run_once()
    finally:
        await server.stop(None)
    assert third is not None
    assert [r.run_id for r in fake.runs] == [first.run_id, second.run_id, third.run_id]
    assert fake.runs[0].findings[0].key == "memory.use"
    assert parts.queue.count() == 0 and parts.reporter.last_error == ""
    offset = parts.reporter.clock_offset
    assert offset is not None and 41 < offset < 43
