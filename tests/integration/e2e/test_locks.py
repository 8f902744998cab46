"""Locks: the service company stops an agent, an engineer key, a grant or a case at once.

Run in both agent modes (direct, and dial-out with the agent's port kept open so that the
tests can also call it as the controller would). Each test removes its lock again, so the
shared deployment is left as it was.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import pytest

import permissions as p
from demo.deployment import BIN
from rmaint.envelopes import to_wire
from rmaint.v1 import agent_pb2, agent_pb2_grpc
from rmaint.v1 import controller_pb2 as pb
from rmaint.v1 import controller_pb2_grpc as rpc
from tests.integration.e2e.conftest import (
    AGENT_ID,
    E2E,
    ENGINEER,
    REFUSED,
    RPC_TIMEOUT,
    Granted,
    new_id,
    refusal,
)

INTERVAL = 5.0  # diag.processes samples this long: still running when the lock comes


def _add(e2e: E2E, target: str, who: str = "admin") -> pb.LockRecord:
    with e2e.channel("controller", who) as channel:
        return rpc.AdminServiceStub(channel).AddLock(
            pb.AddLockRequest(target=target, reason="e2e: stop"), timeout=RPC_TIMEOUT).lock


def _remove(e2e: E2E, lock_id: str) -> None:
    with e2e.channel("controller", "admin") as channel:
        rpc.AdminServiceStub(channel).RemoveLock(pb.RemoveLockRequest(lock_id=lock_id),
                                                 timeout=RPC_TIMEOUT)


@contextmanager
def _locked(e2e: E2E, target: str) -> Iterator[pb.LockRecord]:
    record = _add(e2e, target)
    try:
        yield record
    finally:
        _remove(e2e, record.lock.lock_id)


def _target(kind: str, e2e: E2E, granted: Granted) -> str:
    return {"grant": f"grant:{granted.grant_id}", "case": f"case:{granted.case_id}",
            "engineer-key": f"engineer-key:{p.key_id(e2e.engineer_key().public_key())}"}[kind]


def _refused_by_agent_within_a_second(e2e: E2E, granted: Granted) -> None:
    """The agent itself refuses (called as the controller would, not through it), for the
    lock: denied before anything ran, reason "locked"."""
    deadline = time.monotonic() + 1.0
    while True:
        envelope = e2e.session_operation(granted)
        mark = e2e.agent_log_mark()
        try:
            e2e.execute(envelope)
        except grpc.RpcError as exc:
            assert (exc.code(), exc.details()) == (grpc.StatusCode.PERMISSION_DENIED, REFUSED)
            e2e.assert_denied(envelope, mark, "locked")
            return
        assert time.monotonic() < deadline, "the agent still ran operations a second later"


@pytest.mark.parametrize("kind", ["grant", "case", "engineer-key"])
def test_a_lock_refuses_at_once_on_both_sides_and_removal_restores(
        deployment: E2E, granted_session: Any, kind: str) -> None:
    granted: Granted = granted_session()
    deployment.positive_control(granted)
    log_mark = deployment.agent_daemon_log.mark()
    with _locked(deployment, _target(kind, deployment, granted)):
        _refused_by_agent_within_a_second(deployment, granted)
        if deployment.dial_out:  # the set came down the agent's own stream too
            assert deployment.agent_daemon_log.wait_for(log_mark, lambda r: r.get("event") in (
                "locks.applied", "locks.current") and r.get("source") == "stream") is not None
        # The controller refuses too, before relaying anything: uniform outward.
        error = refusal(lambda: deployment.run_through_controller(
            deployment.session_operation(granted)))
        assert (error.code(), error.details()) == (grpc.StatusCode.PERMISSION_DENIED, REFUSED)
        assert [lock.target for lock in _agent_locks(deployment)] == \
            [_target(kind, deployment, granted)]
        with deployment.channel("controller", "engineer") as channel:
            engineer = rpc.EngineerServiceStub(channel)
            error = refusal(lambda: engineer.OpenSession(pb.OpenSessionRequest(
                case_id=granted.case_id, agent_id=AGENT_ID, grant_id=granted.grant_id),
                timeout=RPC_TIMEOUT))
            assert (error.code(), error.details()) == \
                (grpc.StatusCode.PERMISSION_DENIED, REFUSED)
            if kind != "grant":  # a new request names the case and the key, not a grant
                error = refusal(lambda: engineer.RequestAccess(pb.RequestAccessRequest(
                    request=to_wire(_request(deployment, granted.case_id))),
                    timeout=RPC_TIMEOUT))
                assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    deployment.still_serving(granted)  # removed: what the grant allows runs again
    assert _agent_locks(deployment) == []


def test_a_lock_cancels_a_running_operation(deployment: E2E, granted_session: Any) -> None:
    granted: Granted = granted_session()
    d = deployment.d
    mark = deployment.agent_log_mark()
    env = {k: v for k, v in os.environ.items() if k != "RMAINT_HOME"}
    running = subprocess.Popen(
        [str(BIN / "rmctl"), "--home", str(d.engineer_home), "diag", "processes",
         "--interval", str(INTERVAL), "--session", granted.session_id],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        attempt = _wait_for_running(deployment, running, mark, granted.session_id)
        locking = time.monotonic()
        with _locked(deployment, f"grant:{granted.grant_id}"):
            _, stderr = running.communicate(timeout=30)
            ended = time.monotonic() - locking
    finally:
        if running.poll() is None:
            running.kill()
            running.communicate()
    assert (running.returncode, stderr.strip()) == (1, "error: permission denied")
    assert ended < 1.0, ended
    results = [e for e in deployment.agent_log(mark)
               if e["kind"] == "result" and e["attempt_id"] == attempt["id"]]
    assert [(r["outcome"], r["detail"]) for r in results] == \
        [("cancelled", "locked while running")]


def test_an_agent_lock_stops_everything_and_closes_its_stream(
        deployment: E2E, granted_session: Any) -> None:
    granted: Granted = granted_session()
    d = deployment.d
    log_mark = deployment.agent_daemon_log.mark()
    with _locked(deployment, f"agent:{AGENT_ID}"):
        _refused_by_agent_within_a_second(deployment, granted)
        listed = {a["agent_id"]: a for a in d.json(d.rmctl("agent", "list", "--json"))}
        assert listed[AGENT_ID]["locked"] is True
        assert "locked" in d.rmctl("agent", "list").stdout
        error = refusal(lambda: deployment.run_through_controller(
            deployment.session_operation(granted)))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        if deployment.dial_out:  # the controller closed the locked agent's stream
            assert deployment.agent_daemon_log.wait_for(
                log_mark, lambda r: r.get("event") == "dialout.disconnected") is not None
        reconnect_mark = d.agent_log_size()
    if deployment.dial_out:
        d.wait_connected(reconnect_mark, timeout=40)
    deployment.still_serving(granted)


def test_only_admins_lock_and_the_cli_manages_locks(deployment: E2E,
                                                    granted_session: Any) -> None:
    granted: Granted = granted_session()
    for who in ("engineer", "auditor", "agent"):
        error = refusal(lambda who=who: _add(deployment, f"grant:{granted.grant_id}", who))
        assert (error.code(), error.details()) == (grpc.StatusCode.PERMISSION_DENIED, REFUSED)
    d = deployment.d
    added = d.json(d.rmctl("lock", "add", f"case:{granted.case_id}", "--reason",
                           "contract dispute", "--for", "2h", "--json"))
    assert (added["target"], added["status"], added["created_by"]) == \
        (f"case:{granted.case_id}", "active", "admin")
    assert 7190 < added["expires_at"] - added["created_at"] <= 7200
    listed = d.json(d.rmctl("lock", "list", "--json"))
    assert added["lock_id"] in [lock["lock_id"] for lock in listed]
    removed = d.json(d.rmctl("lock", "remove", added["lock_id"], "--json"))
    assert (removed["status"], removed["removed_by"]) == ("removed", "admin")
    assert added["lock_id"] not in [lock["lock_id"]
                                    for lock in d.json(d.rmctl("lock", "list", "--json"))]
    shown = d.json(d.rmctl("lock", "list", "--all", "--json"))
    assert [lock["status"] for lock in shown if lock["lock_id"] == added["lock_id"]] == \
        ["removed"]
    bad = d.rmctl("lock", "add", "nothing:x", "--reason", "r", check=False)
    assert bad.returncode == 1 and "lock target must be one of" in bad.stderr
    for unknown in ("case:C-9999", "agent:nope", "grant:G-nope", "engineer-key:sha256:" + "0" * 64):
        refused = d.rmctl("lock", "add", unknown, "--reason", "r", check=False)
        assert refused.returncode == 1 and "--force" in refused.stderr, refused.stderr
    assert all(lock["target"] != "agent:nope" for lock in d.json(d.rmctl("lock", "list", "--json")))
    forced = d.json(d.rmctl("lock", "add", "agent:nope", "--reason", "not yet enrolled",
                            "--force", "--json"))
    assert forced["target"] == "agent:nope"
    d.rmctl("lock", "remove", forced["lock_id"])
    deployment.still_serving(granted)


def test_a_hostile_caller_cannot_push_locks(deployment: E2E) -> None:
    """ApplyLocks takes the controller's identity only."""
    for who in ("engineer", "agent", "admin"):
        with deployment.channel("agent", who) as channel:
            error = refusal(lambda channel=channel: agent_pb2_grpc.AgentServiceStub(
                channel).ApplyLocks(agent_pb2.LockSet(version=2**60), timeout=RPC_TIMEOUT))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED


def _request(e2e: E2E, case_id: str) -> p.Envelope:
    return p.request_access(e2e.engineer_key(), request_id=new_id("R-"), case_id=case_id,
                            agent_id=AGENT_ID, engineer=ENGINEER, scopes=("diag.read",),
                            duration_seconds=600, reason="e2e: while locked",
                            now=int(time.time()))


def _agent_locks(e2e: E2E) -> list[Any]:
    """What ``rmagent locks`` shows: the set the agent keeps."""
    from types import SimpleNamespace

    shown = e2e.d.json(e2e.d.rmagent("locks", "--json"))
    return [SimpleNamespace(**lock) for lock in shown["locks"]]


def _wait_for_running(deployment: E2E, running: subprocess.Popen[str], mark: int,
                      session_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if running.poll() is not None:
            raise AssertionError(f"rmctl ended early: {running.communicate()}")
        attempts = [e for e in deployment.agent_log(mark)
                    if e["kind"] == "attempt" and e["session_id"] == session_id]
        if attempts:
            assert [a["outcome"] for a in attempts] == ["allowed"], attempts
            return attempts[0]
        time.sleep(0.02)
    raise AssertionError("the operation never started on the agent")
