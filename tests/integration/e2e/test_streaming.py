"""Streaming operations end to end: diag.watch through rmctl and the controller, with the
agent in direct and in dial-out mode; support bundles stored, listed and fetched."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

import permissions as p
from rmaint.envelopes import to_wire
from rmaint.v1 import agent_pb2, agent_pb2_grpc
from rmaint.v1 import controller_pb2_grpc as rpc
from tests.integration.e2e.conftest import E2E, REFUSED, RPC_TIMEOUT, Granted


@pytest.fixture(scope="module")
def dialout(deployment_factory: Callable[..., E2E]) -> E2E:
    return deployment_factory(mode="dial-out")


def _stream(e2e: E2E, envelope: p.Envelope) -> tuple[list[bytes], agent_pb2.ExecuteResponse]:
    """EngineerService.RunOperationStream as alice: the parts, then the answer."""
    parts: list[bytes] = []
    with e2e.channel("controller", "engineer") as channel:
        for message in rpc.EngineerServiceStub(channel).RunOperationStream(
                agent_pb2.ExecuteRequest(operation=to_wire(envelope)), timeout=RPC_TIMEOUT):
            if message.WhichOneof("kind") == "done":
                return parts, message.done
            parts.append(message.data)
    raise AssertionError("the stream ended without its answer")


def _watch_through_the_controller(e2e: E2E) -> None:
    granted = e2e.grant_session()
    envelope = e2e.session_operation(granted, "diag.watch", params={
        "metrics": ["cpu", "load"], "every": 1, "for": 2})
    parts, done = _stream(e2e, envelope)
    samples = [json.loads(part) for part in parts]
    assert [s["seq"] for s in samples] == [1, 2]
    assert all(set(s) == {"seq", "at", "cpu", "load", "redactions"} for s in samples)
    assert samples[1]["at"] - samples[0]["at"] == pytest.approx(1.0, abs=0.5)
    e2e.check_receipt(envelope, done)  # signed by the agent over this exact result
    joined = b"".join(parts)
    assert json.loads(done.result_json)["stream"] == {
        "parts": 2, "bytes": len(joined), "sha256": hashlib.sha256(joined).hexdigest()}
    [event] = e2e.session_log(granted.session_id).events
    assert (event.event_id, event.operation, event.outcome) == (done.event_id, "diag.watch", "ok")


def test_watch_over_a_direct_agent(deployment: E2E) -> None:
    _watch_through_the_controller(deployment)


def test_watch_over_a_dial_out_agent(dialout: E2E) -> None:
    _watch_through_the_controller(dialout)


def test_revoking_the_grant_ends_a_watch_over_dial_out_at_once(dialout: E2E) -> None:
    granted = dialout.grant_session()
    envelope = dialout.session_operation(granted, "diag.watch", params={
        "metrics": ["load"], "every": 1, "for": 600})
    first = threading.Event()
    outcome: dict[str, Any] = {}

    def watch() -> None:
        with dialout.channel("controller", "engineer") as channel:
            call = rpc.EngineerServiceStub(channel).RunOperationStream(
                agent_pb2.ExecuteRequest(operation=to_wire(envelope)), timeout=RPC_TIMEOUT)
            try:
                for _ in call:
                    first.set()
            except grpc.RpcError as exc:
                outcome.update(code=exc.code(), at=time.monotonic())

    thread = threading.Thread(target=watch)
    thread.start()
    try:
        assert first.wait(RPC_TIMEOUT)
        revoked_at = time.monotonic()
        d = dialout.d
        revoked = d.json(d.rmagent("revoke", granted.grant_id, "--reason", "enough",
                                   "--json"))
    finally:
        thread.join(RPC_TIMEOUT)
    assert revoked["cancelled_operations"] == 1
    assert outcome["code"] == grpc.StatusCode.PERMISSION_DENIED
    assert outcome["at"] - revoked_at < 2.0  # includes starting rmagent
    [event] = dialout.session_log(granted.session_id).events
    assert (event.operation, event.outcome) == ("diag.watch", "denied")


def test_a_streaming_operation_through_run_operation_is_refused(dialout: E2E) -> None:
    granted = dialout.grant_session()
    envelope = dialout.session_operation(granted, "diag.watch", params={"every": 1, "for": 1})
    with pytest.raises(grpc.RpcError) as refused:
        dialout.run_through_controller(envelope)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "run it with ExecuteStream" in (refused.value.details() or "")


def test_the_agents_execute_stream_refuses_uniformly(deployment: E2E,
                                                      granted_session: Callable[..., Granted],
                                                      ) -> None:
    """Only the controller may call it, and only with an operation the grant allows; a
    refusal says no more than "permission denied", as Execute's."""
    granted = granted_session()
    envelope = deployment.session_operation(granted, "diag.watch", params={"every": 1,
                                                                            "for": 1})

    def call(who: str, operation: p.Envelope) -> grpc.RpcError:
        with deployment.channel("agent", who) as channel:
            stream = agent_pb2_grpc.AgentServiceStub(channel).ExecuteStream(
                agent_pb2.ExecuteRequest(operation=to_wire(operation)), timeout=RPC_TIMEOUT)
            with pytest.raises(grpc.RpcError) as refused:
                list(stream)
        return refused.value

    engineer = call("engineer", envelope)
    assert (engineer.code(), engineer.details()) == (grpc.StatusCode.PERMISSION_DENIED, REFUSED)
    forged = deployment.session_operation(granted, "diag.watch", grant_id="G-unknown")
    unknown = call("controller", forged)
    assert (unknown.code(), unknown.details()) == (grpc.StatusCode.PERMISSION_DENIED, REFUSED)


def test_rmctl_diag_watch_prints_one_json_line_per_sample(deployment: E2E,
                                                         granted_session: Callable[..., Granted],
                                                         ) -> None:
    d = deployment.d
    granted = granted_session()
    done = d.engineer("diag", "watch", "--session", granted.session_id, "--metrics",
                      "memory,processes", "--every", "1", "--for", "2", "--top", "2", "--json")
    lines = done.stdout.splitlines()
    samples = [json.loads(line) for line in lines]
    assert [s["seq"] for s in samples] == [1, 2]
    assert len(samples[0]["processes"]["processes"]) <= 2
    assert samples[0]["memory"]["memory"]["total_bytes"] > 0
    assert done.stderr.strip().startswith("receipt sha256:")
    table = d.engineer("diag", "watch", "--session", granted.session_id, "--metrics", "cpu",
                       "--every", "1", "--for", "1")
    assert "CPU %" in table.stdout and "1 samples" in table.stdout


def test_a_bundle_is_stored_by_hash_attached_and_fetched(deployment: E2E, tmp_path: Path) -> None:
    d = deployment.d
    granted = deployment.grant_session()
    made = d.json(d.engineer("bundle", "create", "--session", granted.session_id,
                             "--include", "system,memory", "--json"))
    sha256 = made["sha256"]
    assert made["bytes"] > 0 and made["result"]["stream"]["sha256"] == sha256
    assert made["case_id"] == granted.case_id
    listed = d.json(d.engineer("bundle", "list", "--case", granted.case_id, "--json"))
    assert [(b["sha256"], b["session_id"], b["event_id"]) for b in listed] == \
        [(sha256, granted.session_id, made["event_id"])]
    [event] = deployment.session_log(granted.session_id).events
    assert (event.operation, event.outcome) == ("bundle.create", "ok")
    assert f"bundle sha256:{sha256}" in event.detail

    target = tmp_path / "bundle.tar.gz"
    got = d.json(d.auditor("bundle", "get", "--case", granted.case_id, "-o", str(target),
                           "--json"))
    assert got["sha256"] == sha256
    assert hashlib.sha256(target.read_bytes()).hexdigest() == sha256
    assert target.stat().st_mode & 0o777 == 0o600
    again = d.engineer("bundle", "get", "--case", granted.case_id, "--sha256", sha256,
                       "-o", str(target), check=False)
    assert (again.returncode, again.stderr) == (
        1, f"error: {target} exists: pass --force to replace it\n")
    d.engineer("bundle", "get", "--case", granted.case_id, "-o", str(target), "--force")
    assert hashlib.sha256(target.read_bytes()).hexdigest() == sha256
    missing = d.engineer("bundle", "get", "--case", granted.case_id, "--sha256", "0" * 64,
                         "-o", str(tmp_path / "none"), check=False)
    assert missing.returncode == 1 and not (tmp_path / "none").exists()
    assert list(tmp_path.iterdir()) == [target]  # no temporary file left behind
    nowhere = tmp_path / "no" / "dir" / "x.tgz"
    unwritable = d.engineer("bundle", "get", "--case", granted.case_id, "-o", str(nowhere),
                            check=False)
    assert (unwritable.returncode, unwritable.stderr) == (
        1, f"error: No such file or directory: {nowhere}\n")
    for args in (("get", "-o", str(tmp_path / "y")), ("list",)):
        unknown = d.engineer("bundle", *args, "--case", "C-9999", check=False)
        assert (unknown.returncode, unknown.stderr) == (1, "error: unknown case C-9999\n")
    told = d.engineer("bundle", "create", "--session", granted.session_id, "--include", "clock")
    assert f") attached to case {granted.case_id}\n" in told.stdout
