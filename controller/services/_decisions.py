"""Recording the customer's signed decisions (grant, denial, revocation, consent to a change)
as an agent reports them.

Each function runs inside one transaction and is idempotent: reporting the same decision
again changes nothing, so agents may retry until they see an acknowledgement.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.engine import Connection

from controller import rules
from controller.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from controller.store import grants, requests, sessions
from controller.store.records import ConsentEntry, GrantRecord, RequestRecord
from permissions import ChangeConsent, Denial, Envelope, Grant, Revocation

APPROVED, DENIED, REVOKED, EXPIRED = "approved", "denied", "revoked", "expired"
CHANGE_APPROVED = "change-approved"


def record_decision(conn: Connection, agent_id: str, decision: Grant | Denial | Revocation,
                    envelope: Envelope, now: float) -> str:
    """Record a verified decision reported by ``agent_id``; returns what happened."""
    if decision.agent_id != agent_id:
        raise PermissionDenied(f"agent {agent_id} reported a decision for {decision.agent_id}")
    if isinstance(decision, Grant):
        return _grant(conn, decision, envelope, now)
    if isinstance(decision, Denial):
        return _denial(conn, decision, envelope, now)
    return _revocation(conn, decision, envelope, now)


def record_change_consent(conn: Connection, agent_id: str, consent: ChangeConsent,
                          envelope: Envelope, now: float) -> str:
    """Record the customer's consent to one previewed change under a recorded grant.

    The controller cannot check the change itself (the preview stays on the agent): the
    entry says which digest the customer signed, under which grant, case and engineer key.
    """
    if consent.agent_id != agent_id:
        raise PermissionDenied(f"agent {agent_id} reported a change consent for "
                               f"{consent.agent_id}")
    grant = grants.get_grant(conn, consent.grant_id)
    if grant is None:
        raise NotFound(f"unknown grant {consent.grant_id}")
    _owned_by(grant.agent_id, agent_id, f"grant {grant.grant_id}")
    if (grant.case_id, grant.engineer_key_id) != (consent.case_id, consent.engineer_key_id):
        raise InvalidArgument(f"the change consent does not match grant {grant.grant_id}")
    if any(e.kind == CHANGE_APPROVED and e.envelope is not None
           and e.envelope.payload == envelope.payload
           for e in requests.consent_entries(conn, case_id=grant.case_id, agent_id=agent_id)):
        return "repeated change consent"
    request = requests.get_request(conn, grant.request_id)
    assert request is not None, "grants reference their request"
    _log(conn, now, CHANGE_APPROVED, request, grant.grant_id, consent.approver_key_id,
         f"consent to change {consent.change_digest} until {_utc(consent.not_after)}",
         grant.scopes, envelope)
    return "change consent recorded"


def _utc(seconds: int) -> str:
    """``seconds`` as a UTC time; as the number itself past what a date can hold (the
    agent signed it; it is recorded, not judged, here)."""
    try:
        return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat()
    except (ValueError, OverflowError, OSError):
        return str(seconds)


def _owned_by(owner: str, agent_id: str, what: str) -> None:
    if owner != agent_id:
        raise PermissionDenied(f"agent {agent_id} reported a decision on {what} of {owner}")


def _request_of(conn: Connection, request_id: str, agent_id: str) -> RequestRecord:
    request = requests.get_request(conn, request_id)
    if request is None:
        raise NotFound(f"unknown access request {request_id}")
    _owned_by(request.agent_id, agent_id, f"request {request_id}")
    return request


def _grant(conn: Connection, grant: Grant, envelope: Envelope, now: float) -> str:
    request = _request_of(conn, grant.request_id, grant.agent_id)
    existing = grants.get_grant(conn, grant.grant_id)
    if existing is not None:
        if existing.envelope.payload != envelope.payload:
            raise FailedPrecondition(f"grant {grant.grant_id} is recorded with other content")
        return "repeated grant"
    if request.grant_id or request.status == DENIED:
        raise FailedPrecondition(f"request {request.request_id} was already decided "
                                 f"({request.status})")
    rules.check_grant_matches(grant, request)
    grants.add_grant(conn, GrantRecord(
        grant_id=grant.grant_id, request_id=grant.request_id, case_id=grant.case_id,
        agent_id=grant.agent_id, engineer=grant.engineer,
        engineer_key_id=grant.engineer_key_id, scopes=grant.scopes,
        not_before=grant.not_before, not_after=grant.not_after,
        approver_key_id=grant.approver_key_id, envelope=envelope, recorded_at=now,
        revoked_at=None, expired_at=None,
    ))
    requests.set_status(conn, request.request_id, APPROVED, grant_id=grant.grant_id)
    _log(conn, now, APPROVED, request, grant.grant_id, grant.approver_key_id, "",
         grant.scopes, envelope)
    return "grant recorded"


def _denial(conn: Connection, denial: Denial, envelope: Envelope, now: float) -> str:
    request = _request_of(conn, denial.request_id, denial.agent_id)
    if request.case_id != denial.case_id:
        raise InvalidArgument(f"denial names case {denial.case_id}, the request {request.case_id}")
    if request.status == DENIED:
        return "repeated denial"
    if not requests.set_status(conn, request.request_id, DENIED,
                               only_if=(requests.PENDING, EXPIRED)):
        raise FailedPrecondition(f"request {request.request_id} was already decided "
                                 f"({request.status})")
    _log(conn, now, DENIED, request, None, denial.approver_key_id, denial.reason,
         request.scopes, envelope)
    return "denial recorded"


def _revocation(conn: Connection, revocation: Revocation, envelope: Envelope,
                now: float) -> str:
    grant = grants.get_grant(conn, revocation.grant_id)
    if grant is None:
        raise NotFound(f"unknown grant {revocation.grant_id}")
    _owned_by(grant.agent_id, revocation.agent_id, f"grant {grant.grant_id}")
    if not grants.mark_revoked(conn, grant.grant_id, now):
        return "repeated revocation"
    request = requests.get_request(conn, grant.request_id)
    assert request is not None, "grants reference their request"
    requests.set_status(conn, request.request_id, REVOKED, only_if=(APPROVED, EXPIRED))
    _log(conn, now, REVOKED, request, grant.grant_id, revocation.approver_key_id,
         revocation.reason, grant.scopes, envelope)
    closed = sessions.close_open_sessions(conn, grant_id=grant.grant_id, reason=REVOKED, now=now)
    return f"revocation recorded, {closed} session(s) closed"


def _log(conn: Connection, now: float, kind: str, request: RequestRecord, grant_id: str | None,
         actor: str, reason: str, scopes: tuple[str, ...], envelope: Envelope | None) -> None:
    requests.append_consent(conn, ConsentEntry(
        entry_id=None, at=now, kind=kind, request_id=request.request_id, grant_id=grant_id,
        case_id=request.case_id, agent_id=request.agent_id, actor=actor, reason=reason,
        scopes=scopes, envelope=envelope,
    ))
