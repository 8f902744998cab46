"""Dial-out agents: no inbound port, operations over the stream the agent opens.

A deployment of its own whose agent runs in pure dial-out mode (``rmagent enroll --mode
dial-out``), plus a second enrolled agent, web-2, whose stream the tests hold themselves
to act as a misbehaving agent.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

import permissions as p
from agent.dialout import DialOut
from demo.deployment import BIN, Deployment, free_port, port_open
from pki.tls import TlsFiles
from rmaint.envelopes import to_wire
from rmaint.v1 import agent_pb2
from rmaint.v1 import controller_pb2 as pb
from rmaint.v1 import controller_pb2_grpc as rpc
from tests.integration.e2e.conftest import (
    E2E,
    ENGINEER,
    REFUSED,
    RPC_TIMEOUT,
    Granted,
    TlsId,
    new_id,
    one_error_line,
    refusal,
)

WEB2 = "web-2"
INTERVAL = 4.0  # diag.processes samples CPU this long: the operation is still running


@pytest.fixture(scope="module")
def dialout(deployment_factory: Callable[..., E2E]) -> E2E:
    return deployment_factory(mode="dial-out")


@pytest.fixture(scope="module")
def web2(dialout: E2E) -> Path:
    """The home of a second agent, enrolled in dial-out mode but not running."""
    d = dialout.d
    home = d.root / WEB2
    home.mkdir()
    token = d.token("agent", "add", WEB2, "--customer", "acme")
    d.run("rmagent", home, "enroll", "--token", token, "--mode", "dial-out")
    return home


def _tls(home: Path) -> TlsId:
    return TlsId((home / "agent.key").read_bytes(), (home / "agent.crt").read_bytes())


def _controller_proc(d: Deployment) -> subprocess.Popen[bytes]:
    (proc,) = [x for x in d.processes if "rmctl" in str(x.args)]
    return proc


def _agent_proc(d: Deployment) -> subprocess.Popen[bytes]:
    (proc,) = [x for x in d.processes if "rmagent" in str(x.args)]
    return proc


def _kill(d: Deployment, proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    d.processes.remove(proc)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "RMAINT_HOME"}


# -- the happy path and presence ---------------------------------------------------------


def test_a_dial_out_agent_listens_nowhere_and_serves_through_its_stream(dialout: E2E) -> None:
    d = dialout.d
    assert not port_open(d.agent_port)
    granted = dialout.grant_session()
    mark = dialout.agent_daemon_log.mark()
    done = d.engineer("diag", "system", "--session", granted.session_id, "--json")
    assert json.loads(done.stdout)["hostname"]
    assert done.stderr.startswith("receipt sha256:")
    answered = dialout.agent_daemon_log.wait_for(
        mark, lambda r: r.get("event") == "dialout.answered")
    assert answered is not None and answered["answer"] == "response"
    (event,) = dialout.session_log(granted.session_id).events
    assert (event.operation, event.outcome) == ("diag.system", "ok")


def test_agent_list_shows_online_dial_out_agents_and_offline_ones(dialout: E2E,
                                                                  web2: Path) -> None:
    listed = {a["agent_id"]: a for a in dialout.d.json(dialout.d.rmctl("agent", "list",
                                                                       "--json"))}
    assert (listed["web-1"]["address"], listed["web-1"]["online"]) == ("", True)
    assert listed["web-1"]["last_seen"] >= time.time() - 30
    assert (listed[WEB2]["online"], listed[WEB2]["last_seen"]) == (False, 0)
    table = dialout.d.rmctl("agent", "list").stdout
    rows = {line.split()[1]: line for line in table.splitlines() if "acme" in line}
    assert "online" in rows["web-1"] and "(dial-out)" in rows["web-1"]
    assert "offline" in rows[WEB2]


# -- who may open the stream, and what it accepts ----------------------------------------


@pytest.mark.parametrize("party", ["engineer", "admin", "controller", "auditor"])
def test_only_an_agent_certificate_may_open_the_stream(dialout: E2E, party: str) -> None:
    mark = dialout.controller_log.mark()
    with dialout.channel("controller", party) as channel:
        frames = rpc.AgentReportServiceStub(channel).Connect(iter(()), timeout=RPC_TIMEOUT)
        error = refusal(lambda: list(frames))
    assert (error.code(), error.details()) == (grpc.StatusCode.PERMISSION_DENIED, REFUSED)
    logged = dialout.controller_log.wait_for(mark, lambda r: r.get("event") == "rpc.refused")
    assert logged is not None
    assert (logged["method"], logged["reason"]) == \
        ("/rmaint.v1.AgentReportService/Connect", f"role {party} may not call this method")


class FakeAgent:
    """web-2's stream, held by the test: frames in through a queue, frames out as read."""

    def __init__(self, e2e: E2E, home: Path) -> None:
        self._outbox: queue.Queue[pb.AgentFrame | None] = queue.Queue()
        self._channel = e2e.channel("controller", _tls(home))
        self._frames = rpc.AgentReportServiceStub(self._channel).Connect(
            iter(self._outbox.get, None), timeout=120)
        self._frames.initial_metadata()  # admitted: the controller registered the stream

    def send(self, frame: pb.AgentFrame) -> None:
        self._outbox.put(frame)

    def receive(self) -> pb.ControllerFrame:
        return next(self._frames)  # type: ignore[no-any-return]  # untyped stub

    def close(self) -> None:
        self._outbox.put(None)
        self._channel.close()


@pytest.fixture
def fake_web2(dialout: E2E, web2: Path) -> Iterator[FakeAgent]:
    agent = FakeAgent(dialout, web2)
    try:
        yield agent
    finally:
        agent.close()


def _web2_session(e2e: E2E, web2: Path) -> Granted:
    """A session on web-2 under a grant signed by an approver key web-2 reported."""
    approver = ed25519.Ed25519PrivateKey.generate()
    with e2e.channel("controller", _tls(web2)) as channel:
        rpc.AgentReportServiceStub(channel).Heartbeat(pb.HeartbeatRequest(approver_keys={
            p.key_id(approver.public_key()): p.public_key_bytes(approver.public_key())}),
            timeout=RPC_TIMEOUT)
    case_id = e2e.open_case()
    envelope = p.request_access(
        e2e.engineer_key(), request_id=new_id("R-"), case_id=case_id, agent_id=WEB2,
        engineer=ENGINEER, scopes=("diag.read",), duration_seconds=3600,
        reason="dial-out frames", now=int(time.time()))
    grant = p.approve(p.verify_access_request(envelope), approver, grant_id=new_id("G-"),
                      now=int(time.time()))
    with e2e.channel("controller", "engineer") as channel:
        rpc.EngineerServiceStub(channel).RequestAccess(
            pb.RequestAccessRequest(request=to_wire(envelope)), timeout=RPC_TIMEOUT)
    with e2e.channel("controller", _tls(web2)) as channel:
        rpc.AgentReportServiceStub(channel).ReportConsent(
            pb.ReportConsentRequest(decision=to_wire(grant)), timeout=RPC_TIMEOUT)
    grant_id = str(p.peek(grant.payload, "grant_id"))
    with e2e.channel("controller", "engineer") as channel:
        opened = rpc.EngineerServiceStub(channel).OpenSession(pb.OpenSessionRequest(
            case_id=case_id, agent_id=WEB2, grant_id=grant_id), timeout=RPC_TIMEOUT)
    return Granted(case_id, "", grant_id, opened.session.session_id, ("diag.read",))


def _run_on_web2(e2e: E2E, granted: Granted, seq: int) -> Any:
    """RunOperation on web-2 in a thread: the future of its error (or response)."""
    envelope = e2e.sign_operation(session_id=granted.session_id, seq=seq,
                                  grant_id=granted.grant_id, case_id=granted.case_id,
                                  agent_id=WEB2)

    def run() -> Any:
        try:
            return e2e.run_through_controller(envelope)
        except grpc.RpcError as exc:
            return exc
    return ThreadPoolExecutor(1).submit(run)


def test_malformed_frames_and_foreign_call_ids_are_refused_and_the_stream_serves_on(
        dialout: E2E, web2: Path, fake_web2: FakeAgent) -> None:
    granted = _web2_session(dialout, web2)
    mark = dialout.controller_log.mark()
    # Nothing was sent yet: no call id can be answered.
    fake_web2.send(pb.AgentFrame(call_id=1, response=agent_pb2.ExecuteResponse()))
    refused = fake_web2.receive()
    assert (refused.call_id, refused.refused.code, refused.refused.message) == \
        (1, grpc.StatusCode.PERMISSION_DENIED.value[0], REFUSED)
    running = _run_on_web2(dialout, granted, seq=1)
    call = fake_web2.receive()
    assert call.WhichOneof("body") == "execute"
    assert p.peek(call.execute.operation.payload, "agent_id") == WEB2
    fake_web2.send(pb.AgentFrame(call_id=call.call_id))  # no answer in it
    malformed = fake_web2.receive()
    assert (malformed.call_id, malformed.refused.code, malformed.refused.message) == \
        (call.call_id, grpc.StatusCode.INVALID_ARGUMENT.value[0], "malformed frame: no answer")
    fake_web2.send(pb.AgentFrame(call_id=call.call_id + 7, response=agent_pb2.ExecuteResponse()))
    assert fake_web2.receive().refused.message == REFUSED
    assert not running.done()
    # The stream still serves: the right answer to the right id ends the engineer's call.
    fake_web2.send(pb.AgentFrame(call_id=call.call_id, status=pb.CallStatus(
        code=grpc.StatusCode.PERMISSION_DENIED.value[0], message=REFUSED)))
    error = running.result(timeout=RPC_TIMEOUT)
    assert isinstance(error, grpc.RpcError)
    assert (error.code(), error.details()) == (grpc.StatusCode.PERMISSION_DENIED, REFUSED)
    (event,) = dialout.session_log(granted.session_id).events
    assert (event.outcome, event.detail) == ("denied", f"PERMISSION_DENIED: {REFUSED}")
    reasons = [r["reason"] for r in dialout.controller_log.since(mark)
               if r.get("event") == "dialin.frame_refused"]
    assert reasons == ["call id 1 is not awaiting an answer", "no answer",
                       f"call id {call.call_id + 7} is not awaiting an answer"]


def test_a_stream_that_keeps_sending_frames_to_refuse_is_closed(
        dialout: E2E, web2: Path, fake_web2: FakeAgent) -> None:
    from controller.dialin import MAX_REFUSALS

    _web2_session(dialout, web2)
    mark = dialout.controller_log.mark()
    for n in range(MAX_REFUSALS + 1):  # answers to calls nobody made, unread at first
        fake_web2.send(pb.AgentFrame(call_id=10_000 + n, response=agent_pb2.ExecuteResponse()))
    refusals = [fake_web2.receive() for _ in range(MAX_REFUSALS)]
    assert {r.refused.message for r in refusals} == {REFUSED}
    with pytest.raises(StopIteration):  # then the controller ends the stream
        fake_web2.receive()
    closed = [r for r in dialout.controller_log.since(mark) if r.get("event") == "dialin.closed"]
    assert [r["reason"] for r in closed] == [f"over {MAX_REFUSALS} frames refused"]


def test_undecodable_bytes_end_only_that_stream(dialout: E2E, web2: Path) -> None:
    with dialout.channel("controller", _tls(web2)) as channel:
        connect = channel.stream_stream("/rmaint.v1.AgentReportService/Connect",
                                        request_serializer=bytes, response_deserializer=bytes)
        replies = connect(iter([b"\xff\xff\xff"]), timeout=RPC_TIMEOUT)
        error = refusal(lambda: list(replies))
    assert (error.code(), error.details()) == \
        (grpc.StatusCode.INVALID_ARGUMENT, "malformed frame: not a valid protobuf message")
    granted = dialout.grant_session()
    done = dialout.d.engineer("diag", "system", "--session", granted.session_id, "--json")
    assert json.loads(done.stdout)["hostname"]


# -- losing the connection ---------------------------------------------------------------


def _start_long_operation(e2e: E2E, granted: Granted) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(BIN / "rmctl"), "--home", str(e2e.d.engineer_home), "diag", "processes",
         "--interval", str(INTERVAL), "--session", granted.session_id],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())


def _wait_running(e2e: E2E, mark: int, session_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        attempts = [e for e in e2e.agent_log(mark)
                    if e["kind"] == "attempt" and e["session_id"] == session_id]
        if attempts:
            return attempts[0]
        time.sleep(0.02)
    raise AssertionError("the operation never started on the agent")


def _wait_result(e2e: E2E, mark: int, attempt_id: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 3 * INTERVAL
    while time.monotonic() < deadline:
        results = [e for e in e2e.agent_log(mark)
                   if e["kind"] == "result" and e["attempt_id"] == attempt_id]
        if results:
            return results
        time.sleep(0.05)
    raise AssertionError("the agent never finished the operation")


def test_an_operation_in_flight_when_the_agent_drops_fails_unavailable(dialout: E2E) -> None:
    d = dialout.d
    granted = dialout.grant_session(scopes=("diag.read",))
    mark = dialout.agent_log_mark()
    running = _start_long_operation(dialout, granted)
    _wait_running(dialout, mark, granted.session_id)
    _kill(d, _agent_proc(d))
    stdout, stderr = running.communicate(timeout=30)
    assert (running.returncode, stdout) == (1, "")
    assert stderr.strip().startswith("error: ") and "unreachable" in stderr, stderr
    (event,) = dialout.session_log(granted.session_id).events
    assert (event.outcome, event.detail) == ("error", "UNAVAILABLE: agent offline")
    d.start_agent()  # waits until it has dialled in again
    done = d.engineer("diag", "system", "--session", granted.session_id, "--json")
    assert json.loads(done.stdout)["hostname"]
    seqs = [e["seq"] for e in dialout.agent_log(mark)
            if e["kind"] == "attempt" and e["session_id"] == granted.session_id]
    assert seqs == [1, 2]  # the lost one ran once and was not sent again


def test_an_abandoned_call_is_cancelled_on_the_agent_as_in_direct_mode(dialout: E2E) -> None:
    granted = dialout.grant_session()
    mark = dialout.agent_log_mark()
    running = _start_long_operation(dialout, granted)
    attempt = _wait_running(dialout, mark, granted.session_id)
    running.send_signal(signal.SIGKILL)  # the engineer's rmctl goes away mid-call
    running.communicate(timeout=30)
    started = time.monotonic()
    results = _wait_result(dialout, mark, attempt["id"])
    assert time.monotonic() - started < INTERVAL  # stopped, not run to its end
    assert [(r["outcome"], r["detail"]) for r in results] == [("cancelled", "caller cancelled")]
    done = dialout.d.engineer("diag", "system", "--session", granted.session_id, "--json")
    assert json.loads(done.stdout)["hostname"]


def test_the_agent_reconnects_after_a_controller_restart_and_nothing_runs_twice(
        dialout: E2E) -> None:
    d = dialout.d
    granted = dialout.grant_session()
    mark = dialout.agent_log_mark()
    running = _start_long_operation(dialout, granted)
    attempt = _wait_running(dialout, mark, granted.session_id)
    log_mark = d.agent_log_size()
    _kill(d, _controller_proc(d))
    stdout, stderr = running.communicate(timeout=30)
    assert one_error_line(subprocess.CompletedProcess(running.args, running.returncode,
                                                      stdout, stderr))
    d.start_controller()
    d.wait_connected(log_mark)
    results = _wait_result(dialout, mark, attempt["id"])
    assert [r["outcome"] for r in results] == ["ok"]  # it finished; its answer had no taker
    done = d.engineer("diag", "system", "--session", granted.session_id, "--json")
    assert json.loads(done.stdout)["hostname"]
    attempts = [e for e in dialout.agent_log(mark)
                if e["kind"] == "attempt" and e["session_id"] == granted.session_id]
    assert [(a["seq"], a["operation"]) for a in attempts] == \
        [(1, "diag.processes"), (2, "diag.system")]
    events = dialout.session_log(granted.session_id).events
    # Recorded before it was relayed; the controller died before it could record the end.
    assert [(e.seq, e.outcome) for e in events] == [(1, "pending"), (2, "ok")]


# -- the reconnection schedule, with a fake sleep and random draw -----------------------


class _Stop(Exception):
    pass


def _dialout(address: str, home: Path, delays: list[float], stop_after: int,
             connected: Callable[[], None] = lambda: None) -> DialOut:
    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        connected()
        if len(delays) >= stop_after:
            raise _Stop

    async def execute(request: agent_pb2.ExecuteRequest) -> agent_pb2.ExecuteResponse:
        raise AssertionError("nothing is sent in this test")

    files = TlsFiles(home / "agent.key", home / "agent.crt", home / "ca.crt")
    return DialOut(controller=address, trust_domain="example.test", files=files,
                   execute=execute, sleep=sleep, rand=lambda: 1.0)


def test_failed_connections_back_off_exponentially_up_to_the_cap(web2: Path) -> None:
    delays: list[float] = []
    closed = f"127.0.0.1:{free_port()}"
    with pytest.raises(_Stop):
        asyncio.run(_dialout(closed, web2, delays, stop_after=9).run())
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_an_established_connection_starts_the_schedule_over(dialout: E2E, web2: Path) -> None:
    """web-2 dials in; the test replaces its stream with its own, which ends the first."""
    delays: list[float] = []
    replaced = threading.Event()

    async def main() -> DialOut:
        dial = _dialout(f"127.0.0.1:{dialout.d.controller_port}", web2, delays, stop_after=1)
        task = asyncio.create_task(dial.run())
        await asyncio.wait_for(dial.connected.wait(), RPC_TIMEOUT)
        await asyncio.to_thread(_replace_web2, dialout, web2, replaced)
        with pytest.raises(_Stop):
            await asyncio.wait_for(task, RPC_TIMEOUT)
        return dial
    dial = asyncio.run(main())
    assert replaced.is_set() and dial.connections == 1
    assert delays == [0.5]  # failures == 1 after an established stream: base * 2**0


def _replace_web2(e2e: E2E, web2: Path, done: threading.Event) -> None:
    agent = FakeAgent(e2e, web2)
    done.set()
    agent.close()
