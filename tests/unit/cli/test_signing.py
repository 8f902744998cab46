"""What the engineer signs verifies on the agent's side with the identity key, and only so."""

from __future__ import annotations

import re

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

import permissions
from controller.client.engineer import (
    SessionState,
    new_request_id,
    sign_access_request,
    sign_operation,
)
from controller.client.errors import InputError

STATE = SessionState("S-0123456789ab", "C-0001", "web-1", "G-1", next_seq=5)


@pytest.fixture
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def keys_of(key: ec.EllipticCurvePrivateKey) -> dict[str, permissions.PublicKey]:
    return {permissions.key_id(key.public_key()): key.public_key()}


def test_operation_envelope_verifies_with_the_identity_key(key: ec.EllipticCurvePrivateKey
                                                           ) -> None:
    envelope = sign_operation(key, STATE, seq=5, operation="diag.processes",
                              params={"by": "cpu", "limit": 10, "interval": 0.5}, now=1234)
    payload = permissions.verify(envelope, permissions.OPERATION, keys_of(key))
    op = permissions.Operation.from_payload(payload)
    assert op == permissions.Operation(
        session_id="S-0123456789ab", seq=5, grant_id="G-1", agent_id="web-1", case_id="C-0001",
        operation="diag.processes", params={"by": "cpu", "limit": 10, "interval": 0.5},
        issued_at=1234)


def test_operation_does_not_verify_with_another_key(key: ec.EllipticCurvePrivateKey) -> None:
    envelope = sign_operation(key, STATE, seq=1, operation="diag.system", params={}, now=1)
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(permissions.BadSignature):
        permissions.verify(envelope, permissions.OPERATION, keys_of(other))


def test_an_altered_operation_does_not_verify(key: ec.EllipticCurvePrivateKey) -> None:
    envelope = sign_operation(key, STATE, seq=1, operation="diag.system", params={}, now=1)
    forged = permissions.Envelope(envelope.payload_type,
                                  envelope.payload.replace(b'"seq":1', b'"seq":2'),
                                  envelope.signatures)
    with pytest.raises(permissions.BadSignature):
        permissions.verify(forged, permissions.OPERATION, keys_of(key))


def test_the_agent_allows_a_signed_operation_under_a_grant_for_the_key(
        key: ec.EllipticCurvePrivateKey) -> None:
    request = permissions.verify_access_request(sign_access_request(
        key, engineer="alice", case_id="C-0001", agent_id="web-1", scopes=["diag.read"],
        duration_seconds=3600, reason="disk full", now=900))
    approver = ed25519.Ed25519PrivateKey.generate()
    grant = permissions.approve(request, approver, grant_id="G-1", now=1000)
    op = sign_operation(key, STATE, seq=5, operation="diag.system", params={}, now=1100)
    trust = permissions.AgentTrust("web-1", {permissions.key_id(approver.public_key()):
                                             approver.public_key()})
    decision = permissions.evaluate(
        grant_envelope=grant, operation_envelope=op, trust=trust,
        scope_of={"diag.system": "diag.read"}.get, last_seq=4, revoked=(), now=1100)
    assert decision.allowed, decision


def test_access_request_names_the_identity_key_and_a_fresh_id(
        key: ec.EllipticCurvePrivateKey) -> None:
    envelope = sign_access_request(key, engineer="alice", case_id="C-0001", agent_id="web-1",
                                   scopes=["diag.read", "diag.logs"], duration_seconds=7200,
                                   reason="slow disks", now=1000)
    request = permissions.verify_access_request(envelope)
    assert request.engineer_key_id == permissions.key_id(key.public_key())
    assert re.fullmatch(r"R-[0-9a-f]{12}", request.request_id)
    assert request.scopes == ("diag.logs", "diag.read")
    assert (request.case_id, request.agent_id, request.engineer) == ("C-0001", "web-1", "alice")
    assert request.duration_seconds == 7200 and request.created_at == 1000


def test_request_ids_do_not_repeat() -> None:
    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(re.fullmatch(r"R-[0-9a-f]{12}", i) for i in ids)


@pytest.mark.parametrize(("change", "message"), [
    ({"scopes": ["diag.everything"]}, "unknown scope"),
    ({"scopes": []}, "no scope"),
    ({"duration_seconds": 0}, "duration"),
    ({"duration_seconds": 15 * 86400}, "duration"),
    ({"reason": "  "}, "reason"),
])
def test_requests_the_agent_would_refuse_are_not_signed(
        key: ec.EllipticCurvePrivateKey, change: dict[str, object], message: str) -> None:
    fields: dict[str, object] = dict(engineer="alice", case_id="C-0001", agent_id="web-1",
                                     scopes=["diag.read"], duration_seconds=60, reason="x",
                                     now=1)
    fields.update(change)
    with pytest.raises(InputError, match=message):
        sign_access_request(key, **fields)  # type: ignore[arg-type]


def test_operations_the_agent_would_refuse_are_not_signed(
        key: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(InputError):
        sign_operation(key, STATE, seq=0, operation="diag.system", params={}, now=1)
