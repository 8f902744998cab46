"""Bad bytes against the running controller and agent: malformed protobuf, oversized
messages, unknown RPCs. Each gets a clean status (INVALID_ARGUMENT, RESOURCE_EXHAUSTED,
UNIMPLEMENTED, or the uniform refusal), never an internal one, and the servers keep
serving: a health check and a real diagnostic succeed afterwards.

These tests try to break the servers, so they run on a deployment of their own.
"""

from __future__ import annotations

import grpc
import pytest

import permissions as p
from rmaint.v1 import agent_pb2, common_pb2
from rmaint.v1 import controller_pb2 as pb
from tests.integration.e2e.conftest import E2E, REFUSED, Granted, TlsId, refusal

GARBAGE = b"\xff\xff\xff\xff"
OVERSIZED = b"\x0a" + b"\x00" * (5 * 1024 * 1024)  # one 5 MiB field: over the 4 MiB limit
BIG_SENDER = [("grpc.max_send_message_length", 16 * 1024 * 1024)]
NOT_PROTOBUF = "malformed request: not a valid protobuf message"


@pytest.fixture(scope="module")
def fresh(deployment_with_session: object) -> tuple[E2E, Granted]:
    return deployment_with_session()  # type: ignore[operator, no-any-return]


def raw_call(e2e: E2E, target: str, who: TlsId | str | None, method: str,
             body: bytes) -> grpc.RpcError:
    """Send ``body`` as the request of ``method`` and return the error it must cause."""
    with e2e.channel(target, who, options=BIG_SENDER) as channel:
        return refusal(lambda: channel.unary_unary(method)(body, timeout=30))


# -- the controller ------------------------------------------------------------------------

@pytest.mark.parametrize(("target", "who", "method"), [
    ("controller", "admin", "/rmaint.v1.RecordsService/ListCases"),
    ("controller", "engineer", "/rmaint.v1.EngineerService/RunOperation"),
    ("enroll", None, "/rmaint.v1.EnrollmentService/Enroll"),
])
def test_controller_answers_malformed_protobuf_with_invalid_argument(
        fresh: tuple[E2E, Granted], target: str, who: str | None, method: str) -> None:
    e2e, granted = fresh
    error = raw_call(e2e, target, who, method, GARBAGE)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
    e2e.still_serving(granted)


def test_controller_refuses_a_wrong_role_before_parsing_its_bytes(
        fresh: tuple[E2E, Granted]) -> None:
    e2e, granted = fresh
    mark = e2e.controller_log.mark()
    error = raw_call(e2e, "controller", "auditor", "/rmaint.v1.AdminService/AddCustomer",
                     GARBAGE)
    assert (error.code(), error.details()) == (grpc.StatusCode.PERMISSION_DENIED, REFUSED)
    refused = [r for r in e2e.controller_log.since(mark) if r["event"] == "rpc.refused"]
    assert [(r["method"], r["reason"]) for r in refused] == [
        ("/rmaint.v1.AdminService/AddCustomer", "role auditor may not call this method")]
    e2e.still_serving(granted)


def test_controller_answers_malformed_envelopes_with_invalid_argument(
        fresh: tuple[E2E, Granted]) -> None:
    e2e, granted = fresh
    key = e2e.engineer_key()
    unreadable = p.sign(p.OPERATION, b"this is not JSON", key)
    missing = p.sign(p.OPERATION, b'{"session_id": "S-1"}', key)
    mark = e2e.agent_log_mark()
    for request in (agent_pb2.ExecuteRequest(),
                    agent_pb2.ExecuteRequest(operation=common_pb2.Envelope(payload=b"x")),
                    *(agent_pb2.ExecuteRequest(operation=common_pb2.Envelope(
                        payload_type=env.payload_type, payload=env.payload,
                        signatures=[common_pb2.Signature(key_id=s.key_id, sig=s.sig)
                                    for s in env.signatures])) for env in (unreadable, missing))):
        error = raw_call(e2e, "controller", "engineer", "/rmaint.v1.EngineerService/RunOperation",
                         request.SerializeToString())
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
    assert e2e.agent_log(mark) == []  # nothing was relayed
    e2e.still_serving(granted)


@pytest.mark.parametrize(("target", "who", "method"), [
    ("controller", "admin", "/rmaint.v1.RecordsService/ListCases"),
    ("enroll", None, "/rmaint.v1.EnrollmentService/Enroll"),
])
def test_controller_refuses_oversized_messages(fresh: tuple[E2E, Granted], target: str,
                                               who: str | None, method: str) -> None:
    e2e, granted = fresh
    error = raw_call(e2e, target, who, method, OVERSIZED)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (error.code(), error.details())
    e2e.still_serving(granted)


@pytest.mark.parametrize(("target", "who", "method", "status"), [
    ("controller", "admin", "/rmaint.v1.NoSuchService/Call",
     (grpc.StatusCode.PERMISSION_DENIED, REFUSED)),
    ("controller", "admin", "/rmaint.v1.AdminService/DropEverything",
     (grpc.StatusCode.PERMISSION_DENIED, REFUSED)),
    ("controller", "engineer", "/rmaint.v1.AgentService/Execute",
     (grpc.StatusCode.PERMISSION_DENIED, REFUSED)),
    ("enroll", None, "/rmaint.v1.AdminService/ListCustomers",
     (grpc.StatusCode.UNIMPLEMENTED, None)),
])
def test_controller_refuses_unknown_rpcs(fresh: tuple[E2E, Granted], target: str,
                                         who: str | None, method: str,
                                         status: tuple[grpc.StatusCode, str | None]) -> None:
    e2e, granted = fresh
    error = raw_call(e2e, target, who, method, pb.ListCustomersRequest().SerializeToString())
    assert error.code() == status[0], (error.code(), error.details())
    if status[1] is not None:
        assert error.details() == status[1]
    e2e.still_serving(granted)


# -- the agent -----------------------------------------------------------------------------

EXECUTE = "/rmaint.v1.AgentService/Execute"


def test_agent_answers_malformed_protobuf_with_invalid_argument(
        fresh: tuple[E2E, Granted]) -> None:
    e2e, granted = fresh
    mark = e2e.agent_log_mark()
    error = raw_call(e2e, "agent", "controller", EXECUTE, GARBAGE)
    assert (error.code(), error.details()) == (grpc.StatusCode.INVALID_ARGUMENT, NOT_PROTOBUF)
    assert e2e.agent_log(mark) == []
    # From a caller that may not call Execute, the bytes are never even parsed.
    error = raw_call(e2e, "agent", "engineer", EXECUTE, GARBAGE)
    assert (error.code(), error.details()) == (grpc.StatusCode.PERMISSION_DENIED, REFUSED)
    e2e.still_serving(granted)


def test_agent_records_and_refuses_a_malformed_envelope(fresh: tuple[E2E, Granted]) -> None:
    e2e, granted = fresh
    envelope = common_pb2.Envelope(payload_type=p.OPERATION, payload=b"\x00not json",
                                   signatures=[common_pb2.Signature(key_id="k", sig=b"s")])
    mark = e2e.agent_log_mark()
    error = raw_call(e2e, "agent", "controller", EXECUTE,
                     agent_pb2.ExecuteRequest(operation=envelope).SerializeToString())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
    entries = e2e.agent_log(mark)
    assert [(e["kind"], e["outcome"], e["reason"]) for e in entries] == \
        [("attempt", "denied", "malformed-statement")]
    e2e.still_serving(granted)


def test_agent_refuses_oversized_messages(fresh: tuple[E2E, Granted]) -> None:
    e2e, granted = fresh
    mark = e2e.agent_log_mark()
    error = raw_call(e2e, "agent", "controller", EXECUTE, OVERSIZED)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (error.code(), error.details())
    assert e2e.agent_log(mark) == []
    e2e.still_serving(granted)


@pytest.mark.parametrize("method", ["/rmaint.v1.NoSuchService/Call",
                                    "/rmaint.v1.AgentService/Upload",
                                    "/rmaint.v1.AgentLocalService/Approve"])
def test_agent_refuses_unknown_rpcs(fresh: tuple[E2E, Granted], method: str) -> None:
    e2e, granted = fresh
    error = raw_call(e2e, "agent", "controller", method, b"")
    assert (error.code(), error.details()) == (grpc.StatusCode.PERMISSION_DENIED, REFUSED)
    e2e.still_serving(granted)
