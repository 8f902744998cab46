"""Pure pieces: the error table, business rules, approver key checks, stored envelopes."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

import permissions as p
from controller import errors, rules
from controller.authz import Caller
from controller.services.agent_report import approver_keys
from controller.services.cases import assignee_for
from controller.store.codec import envelope_of, envelope_text
from controller.store.records import AgentRecord, Case, Customer, GrantRecord, RequestRecord
from pki.identity import Identity

NOW = 1_800_000_000.0  # 2027-01-15 UTC


def test_every_rpc_error_has_a_status() -> None:
    leaves = [errors.InvalidArgument, errors.NotFound, errors.AlreadyExists,
              errors.FailedPrecondition, errors.PermissionDenied, errors.EnrollmentRefused,
              errors.AgentUnreachable, errors.AgentTimedOut, errors.AgentFailed,
              errors.StoreUnavailable, errors.StoreConflict]
    assert set(errors.STATUS) == set(leaves)
    assert errors.status_of(errors.NotFound("unknown case C-1")) == (
        grpc.StatusCode.NOT_FOUND, "unknown case C-1")
    assert errors.status_of(errors.ConfigError("x"))[0] == grpc.StatusCode.INTERNAL


@pytest.mark.parametrize(("error", "code", "message"), [
    (errors.PermissionDenied("alice used bob's session"),
     grpc.StatusCode.PERMISSION_DENIED, "permission denied"),
    (errors.EnrollmentRefused("join token expired"),
     grpc.StatusCode.UNAUTHENTICATED, "enrollment refused"),
    (errors.StoreUnavailable("password authentication failed for user x"),
     grpc.StatusCode.UNAVAILABLE, "the controller's database is unavailable"),
])
def test_security_and_store_details_never_leave(error: errors.ControllerError,
                                                code: grpc.StatusCode, message: str) -> None:
    assert errors.status_of(error) == (code, message)


def caller(role: str, name: str) -> Caller:
    return Caller(Identity("example.test", role, name))


def test_engineers_open_cases_for_themselves() -> None:
    assert assignee_for(caller("engineer", "alice"), "") == "alice"
    assert assignee_for(caller("engineer", "alice"), "alice") == "alice"
    with pytest.raises(errors.PermissionDenied):
        assignee_for(caller("engineer", "alice"), "bob")
    assert assignee_for(caller("admin", "admin"), "bob") == "bob"
    with pytest.raises(errors.InvalidArgument, match="assignee is required"):
        assignee_for(caller("admin", "admin"), "")


CUSTOMER = Customer("acme", "Acme", dt.date(2027, 1, 1), dt.date(2027, 1, 15), NOW)
CASE = Case("C-0001", "acme", "slow", "open", "alice", "admin", NOW, None, "")


def test_contract_days_are_inclusive_utc() -> None:
    assert rules.contract_day(NOW) == dt.date(2027, 1, 15)
    rules.check_request_target(CASE, _agent(), "web-1", CUSTOMER, NOW)
    with pytest.raises(errors.FailedPrecondition, match="may only advise"):
        rules.check_request_target(CASE, _agent(), "web-1", CUSTOMER, NOW + 86400)


def test_case_must_be_open_and_assigned() -> None:
    assert rules.check_case_for(CASE, "C-0001", "alice") == CASE
    with pytest.raises(errors.FailedPrecondition, match="closed"):
        rules.check_case_for(replace(CASE, status="closed"), "C-0001", "alice")
    # Another engineer's case, open or closed, and no case at all: one answer.
    answers = set()
    for case, case_id in ((CASE, "C-0001"), (replace(CASE, status="closed"), "C-0001"),
                          (None, "C-0001")):
        with pytest.raises(errors.FailedPrecondition) as refused:
            rules.check_case_for(case, case_id, "bob")
        answers.add(str(refused.value))
    assert answers == {"case C-0001 is unknown or not assigned to you"}


def _agent() -> AgentRecord:
    return AgentRecord("web-1", "acme", "h:1", b"", "", NOW, None)


def _request_and_grant(**narrowing: object) -> tuple[RequestRecord, p.Grant]:
    engineer = ec.generate_private_key(ec.SECP256R1())
    approver = ed25519.Ed25519PrivateKey.generate()
    envelope = p.request_access(engineer, request_id="R-1", case_id="C-0001",
                                agent_id="web-1", engineer="alice",
                                scopes=["diag.read", "diag.logs"], duration_seconds=3600,
                                reason="r", now=int(NOW))
    statement = p.verify_access_request(envelope)
    record = RequestRecord("R-1", "C-0001", "web-1", "alice", statement.engineer_key_id,
                           statement.scopes, 3600, "r", "pending", NOW, None, envelope)
    grant = p.Grant.from_payload(p.approve(statement, approver, grant_id="G-1",
                                           now=int(NOW)).payload)
    return record, replace(grant, **narrowing)  # type: ignore[arg-type]


def test_grants_may_only_narrow_their_request() -> None:
    record, grant = _request_and_grant(scopes=("diag.read",))
    rules.check_grant_matches(grant, record)
    for change, message in (({"scopes": ("shell",)}, "scopes not asked for"),
                            ({"not_after": int(NOW) + 7200}, "longer than asked"),
                            ({"engineer": "mallory"}, "engineer"),
                            ({"case_id": "C-0002"}, "case_id")):
        record, grant = _request_and_grant(**change)
        with pytest.raises(errors.InvalidArgument, match=message):
            rules.check_grant_matches(grant, record)


def test_usable_grants() -> None:
    record, grant = _request_and_grant()
    stored = GrantRecord("G-1", "R-1", "C-0001", "web-1", "alice", record.engineer_key_id,
                         grant.scopes, int(NOW), int(NOW) + 60, "a", record.envelope, NOW,
                         None, None)
    usable = {"case_id": "C-0001", "agent_id": "web-1",
              "engineer_key_id": record.engineer_key_id}
    assert rules.check_grant_usable(stored, "G-1", now=NOW, **usable) == stored
    for grant_record, now, message in ((stored, NOW + 60, "not valid now"),
                                       (replace(stored, revoked_at=NOW), NOW, "revoked"),
                                       (replace(stored, engineer_key_id="k"), NOW, "another key"),
                                       (None, NOW, "unknown grant")):
        with pytest.raises(errors.FailedPrecondition, match=message):
            rules.check_grant_usable(grant_record, "G-1", now=now, **usable)


def test_approver_keys_must_be_ed25519_named_by_their_id() -> None:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    raw = p.public_key_bytes(key)
    assert approver_keys({p.key_id(key): raw}) == {p.key_id(key): raw}
    with pytest.raises(errors.InvalidArgument, match="id does not match"):
        approver_keys({"sha256:00": raw})
    ecdsa = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(errors.InvalidArgument, match="Ed25519"):
        approver_keys({p.key_id(ecdsa): p.public_key_bytes(ecdsa)})
    with pytest.raises(errors.InvalidArgument, match="not a public key"):
        approver_keys({"x": b"junk"})


def test_stored_envelopes_keep_the_exact_bytes() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    envelope = p.sign(p.GRANT, b'{"b":1,  "a":2}', key)
    assert envelope_of(envelope_text(envelope)) == envelope
