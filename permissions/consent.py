"""Making and checking the consent statements: request, grant, denial, revocation."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from permissions._codec import check_plain
from permissions._errors import MalformedStatement, PermissionsError
from permissions.envelope import Envelope, PublicKey, key_id, sign, verify, verify_signer
from permissions.scopes import parse_scopes
from permissions.statements import (
    ACCESS_REQUEST,
    DENIAL,
    GRANT,
    MAX_GRANT_SECONDS,
    REVOCATION,
    AccessRequest,
    Denial,
    Grant,
    Revocation,
    decode_key,
    encode_key,
    peek,
)


class NarrowingError(PermissionsError):
    """An approval tried to widen what was asked for."""


def request_access(
    key: ec.EllipticCurvePrivateKey, *, request_id: str, case_id: str, agent_id: str,
    engineer: str, scopes: Iterable[str], duration_seconds: int, reason: str, now: int,
) -> Envelope:
    """An access request signed by the engineer's own key."""
    if not 0 < duration_seconds <= MAX_GRANT_SECONDS:
        raise MalformedStatement(f"duration must be between 1 s and {MAX_GRANT_SECONDS} s")
    if not reason.strip():
        raise MalformedStatement("a reason is required")
    check_plain("the reason", reason)
    statement = AccessRequest(
        request_id=request_id, case_id=case_id, agent_id=agent_id, engineer=engineer,
        engineer_key=encode_key(key.public_key()), scopes=parse_scopes(scopes),
        duration_seconds=duration_seconds, reason=reason, created_at=now,
    )
    # Round-trip through the reader so a request that would be refused is refused here.
    AccessRequest.from_payload(statement.to_payload())
    return sign(ACCESS_REQUEST, statement.to_payload(), key)


def verify_access_request(envelope: Envelope, *, new: bool = False) -> AccessRequest:
    """The request, if signed by the engineer key it carries. ``new``: a request being taken
    in (not read back from storage), whose reason must also be plain text, since the
    customer reads it before approving."""
    claimed = peek(envelope.payload, "engineer_key")
    if not isinstance(claimed, str):
        raise MalformedStatement("access request: missing engineer_key")
    key = decode_key(claimed)
    request = AccessRequest.from_payload(verify(envelope, ACCESS_REQUEST, {key_id(key): key}))
    if new:
        check_plain("access request: reason", request.reason)
    return request


def approve(
    request: AccessRequest, key: ed25519.Ed25519PrivateKey, *, grant_id: str, now: int,
    scopes: Iterable[str] | None = None, duration_seconds: int | None = None,
) -> Envelope:
    """A grant for ``request``, optionally narrowed; its clock starts at approval."""
    granted = parse_scopes(scopes) if scopes is not None else request.scopes
    widened = set(granted) - set(request.scopes)
    if widened:
        raise NarrowingError(f"scopes not asked for: {', '.join(sorted(widened))}")
    duration = request.duration_seconds if duration_seconds is None else duration_seconds
    if not 0 < duration <= request.duration_seconds:
        raise NarrowingError("duration must be positive and at most the one asked for")
    grant = Grant(
        grant_id=grant_id, request_id=request.request_id, case_id=request.case_id,
        agent_id=request.agent_id, engineer=request.engineer,
        engineer_key=request.engineer_key, engineer_key_id=request.engineer_key_id,
        scopes=granted, not_before=now, not_after=now + duration,
        approver_key_id=key_id(key.public_key()), issued_at=now,
    )
    return sign(GRANT, grant.to_payload(), key)


def deny(request: AccessRequest, key: ed25519.Ed25519PrivateKey, *, reason: str,
         now: int) -> Envelope:
    """A signed refusal of ``request``."""
    check_plain("the reason", reason)
    denial = Denial(request_id=request.request_id, case_id=request.case_id,
                    agent_id=request.agent_id, reason=reason,
                    approver_key_id=key_id(key.public_key()), at=now)
    return sign(DENIAL, denial.to_payload(), key)


def revoke(grant: Grant, key: ed25519.Ed25519PrivateKey, *, reason: str,
           now: int) -> Envelope:
    """A signed withdrawal of ``grant``."""
    check_plain("the reason", reason)
    revocation = Revocation(grant_id=grant.grant_id, agent_id=grant.agent_id, reason=reason,
                            approver_key_id=key_id(key.public_key()), at=now)
    return sign(REVOCATION, revocation.to_payload(), key)


Decision = Grant | Denial | Revocation
_DECISIONS: dict[str, type[Grant] | type[Denial] | type[Revocation]] = {
    GRANT: Grant, DENIAL: Denial, REVOCATION: Revocation,
}


def verify_decision(envelope: Envelope, approver_keys: Mapping[str, PublicKey]) -> Decision:
    """A grant, denial or revocation, if signed by the pinned approver key it names."""
    kind = _DECISIONS.get(envelope.payload_type)
    if kind is None:
        raise MalformedStatement(f"not a consent decision: {envelope.payload_type!r}")
    payload, signer = verify_signer(envelope, envelope.payload_type, approver_keys)
    statement = kind.from_payload(payload)
    if statement.approver_key_id != signer:
        raise MalformedStatement("decision names another approver than its signer")
    return statement
