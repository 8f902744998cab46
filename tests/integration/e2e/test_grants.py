"""The agent decides: grants and operations it must refuse, whoever hands them over.

The controller is not trusted. Tests act as a malicious controller with the controller's
own key and certificate (from the controller home): they call the agent's
AgentService.Execute directly with operations they replay, alter or sign themselves.
Grants reach the agent only on its Unix socket (the customer's channel); bad ones are
refused there.

Every refused operation must be recorded in the agent's local log with its precise
reason, and nothing may run: no result record. Where useful, a positive control shows
that the same operation without its one fault runs.
"""

from __future__ import annotations

import json
import time
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

import permissions as p
from rmaint.envelopes import from_wire
from rmaint.v1 import common_pb2
from tests.integration.e2e.conftest import E2E, REFUSED, Granted, new_id, refusal

DENIED = (grpc.StatusCode.PERMISSION_DENIED, REFUSED)
NOT_SIGNED = "grant not accepted: no valid signature by an acceptable key"


@pytest.fixture(scope="module")
def attack_case(deployment: E2E) -> str:
    """A case of alice's on which requests wait for the customer's decision."""
    return deployment.open_case()


@pytest.fixture(scope="module")
def granted(deployment: E2E) -> Granted:
    """A session under an active diag.read grant (rmagent approve, rmctl session open)."""
    return deployment.grant_session()


def denied(deployment: E2E, envelope: p.Envelope | common_pb2.Envelope) -> None:
    error = refusal(lambda: deployment.execute(envelope))
    assert (error.code(), error.details()) == DENIED


def sign_grant(request: p.AccessRequest, key: ed25519.Ed25519PrivateKey, *,
               not_before: int, not_after: int) -> p.Envelope:
    """A grant for ``request`` with the window given, signed by ``key``."""
    grant = p.Grant(
        grant_id=new_id("G-"), request_id=request.request_id, case_id=request.case_id,
        agent_id=request.agent_id, engineer=request.engineer,
        engineer_key=request.engineer_key, engineer_key_id=request.engineer_key_id,
        scopes=request.scopes, not_before=not_before, not_after=not_after,
        approver_key_id=p.key_id(key.public_key()), issued_at=int(time.time()))
    return p.sign(p.GRANT, grant.to_payload(), key)


def refused_offer(deployment: E2E, envelope: p.Envelope, request: p.AccessRequest,
                  message: str) -> None:
    """Approve on the Unix socket refuses ``envelope``, logs why, and stores nothing."""
    mark = deployment.agent_daemon_log.mark()
    error = refusal(lambda: deployment.offer_grant(envelope))
    assert (error.code(), error.details()) == (grpc.StatusCode.FAILED_PRECONDITION, message)
    logged = deployment.agent_daemon_log.wait_for(
        mark, lambda r: r.get("msg") == "call failed" and r.get("method") == "Approve")
    assert logged is not None
    assert (logged["code"], logged["error"]) == ("FAILED_PRECONDITION", message)
    grant_id = p.peek(envelope.payload, "grant_id")
    assert grant_id not in deployment.agent_grants()
    assert deployment.agent_requests()[request.request_id] == "pending"
    # An operation under it (as a malicious controller would relay it) finds no grant.
    operation = deployment.sign_operation(session_id=new_id("S-"), seq=1, grant_id=grant_id,
                                          case_id=request.case_id)
    agent_mark = deployment.agent_log_mark()
    denied(deployment, operation)
    deployment.assert_denied(operation, agent_mark, "grant-unknown", grant_id)


def test_grant_tampered_after_signing_is_refused(deployment: E2E, attack_case: str) -> None:
    request = deployment.pending_request(attack_case, scopes=("diag.read", "diag.logs"))
    signed = p.approve(request, deployment.approver_key(), grant_id=new_id("G-"),
                       now=int(time.time()), scopes=["diag.logs"])
    statement: dict[str, Any] = json.loads(signed.payload)
    statement["scopes"] = ["diag.logs", "diag.read"]  # widened after the customer signed
    payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    tampered = p.Envelope(signed.payload_type, payload, signed.signatures)
    refused_offer(deployment, tampered, request, NOT_SIGNED)


def test_grant_signed_by_an_unpinned_key_is_refused(deployment: E2E, attack_case: str) -> None:
    request = deployment.pending_request(attack_case)
    rogue = ed25519.Ed25519PrivateKey.generate()
    grant = p.approve(request, rogue, grant_id=new_id("G-"), now=int(time.time()))
    refused_offer(deployment, grant, request, NOT_SIGNED)


def test_an_already_expired_grant_is_not_stored(deployment: E2E, attack_case: str) -> None:
    request = deployment.pending_request(attack_case)
    now = int(time.time())
    grant = sign_grant(request, deployment.approver_key(), not_before=now - 3600,
                       not_after=now - 60)
    refused_offer(deployment, grant, request, "grant has already expired")


def test_operations_after_the_grant_expired_are_denied(deployment: E2E,
                                                       attack_case: str) -> None:
    request = deployment.pending_request(attack_case)
    now = int(time.time())
    grant = sign_grant(request, deployment.approver_key(), not_before=now, not_after=now + 3)
    grant_id = str(p.peek(grant.payload, "grant_id"))
    assert deployment.offer_grant(grant).grant_id == grant_id
    session_id = new_id("S-")
    inside = deployment.sign_operation(session_id=session_id, seq=1, grant_id=grant_id,
                                       case_id=attack_case)
    mark = deployment.agent_log_mark()
    deployment.check_receipt(inside, deployment.execute(inside))  # valid while it lasts
    deployment.assert_allowed_and_ran(inside, mark)
    deadline = time.monotonic() + 4.0
    while deployment.agent_grants()[grant_id] != "expired":
        assert time.monotonic() < deadline, "the grant never expired on the agent"
        time.sleep(0.1)
    after = deployment.sign_operation(session_id=session_id, seq=2, grant_id=grant_id,
                                      case_id=attack_case)
    mark = deployment.agent_log_mark()
    denied(deployment, after)
    deployment.assert_denied(after, mark, "grant-expired", f"expired at {now + 3}")


def test_operations_before_the_grant_is_valid_are_denied(deployment: E2E,
                                                         attack_case: str) -> None:
    request = deployment.pending_request(attack_case)
    start = int(time.time()) + 3600
    grant = sign_grant(request, deployment.approver_key(), not_before=start,
                       not_after=start + 1800)
    grant_id = str(p.peek(grant.payload, "grant_id"))
    assert deployment.offer_grant(grant).grant_id == grant_id
    assert deployment.agent_grants()[grant_id] == "not-yet-valid"
    operation = deployment.sign_operation(session_id=new_id("S-"), seq=1, grant_id=grant_id,
                                          case_id=attack_case)
    mark = deployment.agent_log_mark()
    denied(deployment, operation)
    deployment.assert_denied(operation, mark, "grant-not-yet-valid", f"valid from {start}")


def test_operation_for_another_agent_is_denied(deployment: E2E, granted: Granted) -> None:
    operation = deployment.session_operation(granted, agent_id="web-2")
    mark = deployment.agent_log_mark()
    denied(deployment, operation)
    deployment.assert_denied(operation, mark, "grant-for-another-agent")
    deployment.positive_control(granted)


def test_operation_for_another_case_is_denied(deployment: E2E, granted: Granted,
                                              attack_case: str) -> None:
    assert attack_case != granted.case_id  # alice's too, but not what the customer granted
    operation = deployment.session_operation(granted, case_id=attack_case)
    mark = deployment.agent_log_mark()
    denied(deployment, operation)
    deployment.assert_denied(operation, mark, "grant-for-another-case",
                             f"{attack_case} != {granted.case_id}")
    deployment.positive_control(granted)


def test_operation_signed_by_another_key_is_denied(deployment: E2E, granted: Granted) -> None:
    # The controller signs an operation itself, naming alice's session and grant.
    operation = deployment.session_operation(granted, key=deployment.controller_key())
    mark = deployment.agent_log_mark()
    denied(deployment, operation)
    deployment.assert_denied(operation, mark, "operation-not-signed-by-granted-engineer")
    deployment.positive_control(granted)


def test_scope_not_granted_is_denied(deployment: E2E, granted_session: Any) -> None:
    narrowed: Granted = granted_session(scopes=("diag.read", "diag.logs"),
                                        approve_scopes=("diag.logs",))
    assert narrowed.scopes == ("diag.logs",)
    d = deployment.d
    listed = d.json(d.engineer("access", "list", "--case", narrowed.case_id, "--json"))
    # The engineer sees what was asked and what the customer granted.
    assert [(r["scopes"], r["granted_scopes"], r["granted_until"] > r["created_at"])
            for r in listed] == [(["diag.logs", "diag.read"], ["diag.logs"], True)]
    table = d.engineer("access", "list", "--case", narrowed.case_id).stdout
    assert "Granted" in table and "Asked" in table
    mark = deployment.agent_log_mark()
    done = d.engineer("diag", "system", "--session", narrowed.session_id, check=False)
    assert (done.returncode, done.stderr.strip()) == (1, "error: permission denied")
    entries = deployment.agent_log(mark)
    assert [(e["kind"], e["session_id"], e["operation"], e["outcome"], e["reason"], e["detail"])
            for e in entries] == [("attempt", narrowed.session_id, "diag.system", "denied",
                                   "scope-not-granted", "diag.system needs diag.read")]
    events = deployment.session_log(narrowed.session_id).events
    assert [(e.operation, e.outcome, e.HasField("receipt")) for e in events] == \
        [("diag.system", "denied", False)]


def test_replayed_and_backward_sequence_numbers_are_denied(deployment: E2E,
                                                           granted: Granted) -> None:
    for _ in range(2):  # alice works; the controller keeps what it relayed
        deployment.check_receipt(*_relayed(deployment, granted))
    events = deployment.session_log(granted.session_id).events
    last, before = events[-1], events[-2]
    assert (last.outcome, before.outcome, last.seq) == ("ok", "ok", before.seq + 1)
    for captured in (last, before):  # the same again, then going backwards
        mark = deployment.agent_log_mark()
        denied(deployment, captured.operation_envelope)
        deployment.assert_denied(from_wire(captured.operation_envelope), mark,
                                 "sequence-not-increasing", f"seq {captured.seq} after {last.seq}")


def _relayed(deployment: E2E, granted: Granted) -> tuple[p.Envelope, Any]:
    envelope = deployment.session_operation(granted)
    return envelope, deployment.run_through_controller(envelope)


def test_operations_after_revocation_are_denied(deployment: E2E,
                                                granted_session: Any) -> None:
    session: Granted = granted_session()
    d = deployment.d
    revoked = d.json(d.rmagent("revoke", session.grant_id, "--reason", "work is done",
                               "--json"))
    assert revoked["cancelled_operations"] == 0
    assert deployment.agent_grants()[session.grant_id] == "revoked"
    # Through the controller: the session was closed when the revocation was reported.
    done = d.engineer("diag", "system", "--session", session.session_id, check=False)
    assert (done.returncode, done.stderr.strip()) == \
        (1, f"error: session {session.session_id} is closed (revoked)")
    # Straight to the agent, as a controller ignoring the revocation would: denied there.
    operation = deployment.session_operation(session)
    mark = deployment.agent_log_mark()
    denied(deployment, operation)
    deployment.assert_denied(operation, mark, "grant-revoked", session.grant_id)

