"""Checks on consent decisions handed to the agent locally (approve, deny, revoke).

Pure: the signature must verify with a pinned approver key (``trust``), the decision
must be for this agent, and a grant must match the request it answers (same request,
case, engineer and key; scopes and duration within what was asked). Violations raise
ConsentRejected (or NotFound for an unknown request) with a message for the customer.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.errors import ConsentRejected, NotFound
from agent.state import StoredRequest
from permissions import (
    AccessRequest,
    AgentTrust,
    Denial,
    Envelope,
    Grant,
    PermissionsError,
    Revocation,
    verify_decision,
)
from permissions.consent import Decision as ConsentDecision


@dataclass(frozen=True)
class Revoked:
    """A revocation that took effect: how many running operations it stopped."""

    revocation: Revocation
    cancelled: int
    newly_stored: bool


def _verify(envelope: Envelope, trust: AgentTrust, what: str) -> ConsentDecision:
    try:
        decision = verify_decision(envelope, trust.approver_keys)
    except PermissionsError as exc:
        raise ConsentRejected(f"{what} not accepted: {exc}") from exc
    if decision.agent_id != trust.agent_id:
        raise ConsentRejected(f"{what} is for agent {decision.agent_id}, "
                              f"this is {trust.agent_id}")
    return decision


def verify_revocation(envelope: Envelope, trust: AgentTrust) -> Revocation:
    """The revocation, if a pinned approver signed it for this agent."""
    decision = _verify(envelope, trust, "revocation")
    if not isinstance(decision, Revocation):
        raise ConsentRejected("not a revocation")
    return decision


def verify_grant(envelope: Envelope, trust: AgentTrust, request: StoredRequest | None,
                 now: float) -> Grant:
    """The grant, if signed by a pinned approver and within the pending request it answers."""
    grant = _verify(envelope, trust, "grant")
    if not isinstance(grant, Grant):
        raise ConsentRejected("not a grant")
    asked = _pending(request, grant.request_id, now)
    mismatch = _mismatch(grant, asked.request)
    if mismatch:
        raise ConsentRejected(f"grant does not match request {asked.request.request_id}: "
                              f"{mismatch}")
    if now >= grant.not_after:
        raise ConsentRejected("grant has already expired")
    return grant


def verify_denial(envelope: Envelope, trust: AgentTrust, request: StoredRequest | None,
                  now: float) -> Denial:
    """The denial, if signed by a pinned approver for a pending request of this agent."""
    denial = _verify(envelope, trust, "denial")
    if not isinstance(denial, Denial):
        raise ConsentRejected("not a denial")
    asked = _pending(request, denial.request_id, now)
    if denial.case_id != asked.request.case_id:
        raise ConsentRejected(f"denial names case {denial.case_id}, the request "
                              f"is for {asked.request.case_id}")
    return denial


def _pending(request: StoredRequest | None, request_id: str, now: float) -> StoredRequest:
    if request is None or request.request.request_id != request_id:
        raise NotFound(f"unknown request {request_id}")
    status = request.status_at(now)
    if status != "pending":
        raise ConsentRejected(f"request {request_id} is {status}")
    return request


def _mismatch(grant: Grant, asked: AccessRequest) -> str:
    checks = (
        (grant.case_id == asked.case_id, "another case"),
        (grant.agent_id == asked.agent_id, "another agent"),
        (grant.engineer == asked.engineer, "another engineer"),
        (grant.engineer_key == asked.engineer_key
         and grant.engineer_key_id == asked.engineer_key_id, "another engineer key"),
        (set(grant.scopes) <= set(asked.scopes), "scopes not asked for"),
        (0 < grant.not_after - grant.not_before <= asked.duration_seconds,
         "a longer duration than asked for"),
    )
    return ", ".join(text for ok, text in checks if not ok)
