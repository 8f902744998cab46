"""The controller's business rules, as pure checks over values the services loaded.

Each check returns nothing or raises the domain error the caller should see:
FailedPrecondition for refusals by a rule, PermissionDenied for security refusals
(whose message is logged, never sent).
"""

from __future__ import annotations

import datetime as dt

from controller.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from controller.store.records import (
    AgentRecord,
    Case,
    Customer,
    GrantRecord,
    RequestRecord,
    Session,
)
from permissions import MAX_GRANT_SECONDS, AccessRequest, Grant

REQUEST_TTL = 24 * 3600  # undecided requests expire after a day
# Undecided requests one engineer may have at one agent: enough for any repair, and the
# agent's fetch and the customer's list stay small whatever one engineer files.
MAX_PENDING_REQUESTS = 16
OUTSIDE_CONTRACT = "outside the service contract: the service company may only advise"


def contract_day(now: float) -> dt.date:
    """The calendar day contracts are judged by: UTC, so every replica agrees."""
    return dt.datetime.fromtimestamp(now, dt.UTC).date()


def check_signed_by_caller(statement: AccessRequest, caller_name: str, caller_key_id: str) -> None:
    """The request must name the caller and carry the key of the caller's certificate."""
    if statement.engineer != caller_name:
        raise PermissionDenied(f"{caller_name} filed a request naming {statement.engineer}")
    if statement.engineer_key_id != caller_key_id:
        raise PermissionDenied(f"request signed by {statement.engineer_key_id}, "
                               f"not by the caller's certificate key {caller_key_id}")
    if statement.duration_seconds > MAX_GRANT_SECONDS:
        raise InvalidArgument(f"duration_seconds must be at most {MAX_GRANT_SECONDS}")
    if not statement.reason.strip():
        raise InvalidArgument("a reason is required")


def check_case_for(case: Case | None, case_id: str, engineer: str) -> Case:
    """The case exists, is assigned to ``engineer`` and is open.

    An unknown case and another engineer's case get the same answer, so that an engineer
    cannot probe which case ids exist.
    """
    if case is None or case.assignee != engineer:
        raise FailedPrecondition(f"case {case_id} is unknown or not assigned to you")
    if case.status != "open":
        raise FailedPrecondition(f"case {case_id} is closed")
    return case


def check_request_target(case: Case, agent: AgentRecord | None, agent_id: str,
                         customer: Customer | None, now: float) -> None:
    """The agent is the case customer's, and today is inside that customer's contract."""
    if agent is None or agent.customer_id != case.customer_id:
        raise FailedPrecondition(f"agent {agent_id} is not an agent of customer "
                                 f"{case.customer_id}")
    today = contract_day(now)
    if customer is None or not customer.contract_start <= today <= customer.contract_end:
        raise FailedPrecondition(OUTSIDE_CONTRACT)


def check_grant_matches(grant: Grant, request: RequestRecord) -> None:
    """A reported grant must answer its request and may only narrow it."""
    mismatched = [name for name, ours, theirs in (
        ("case_id", request.case_id, grant.case_id),
        ("agent_id", request.agent_id, grant.agent_id),
        ("engineer", request.engineer, grant.engineer),
        ("engineer_key_id", request.engineer_key_id, grant.engineer_key_id),
    ) if ours != theirs]
    if mismatched:
        raise InvalidArgument(f"grant {grant.grant_id} does not match request "
                              f"{request.request_id}: {', '.join(mismatched)}")
    if not set(grant.scopes) <= set(request.scopes):
        raise InvalidArgument(f"grant {grant.grant_id} allows scopes not asked for")
    if grant.not_after - grant.not_before > request.duration_seconds:
        raise InvalidArgument(f"grant {grant.grant_id} is longer than asked for")


def check_grant_usable(grant: GrantRecord | None, grant_id: str, *, case_id: str,
                       agent_id: str, engineer_key_id: str, now: float) -> GrantRecord:
    """The grant exists for this key, case and agent, and is active at ``now``."""
    if grant is None:
        raise FailedPrecondition(f"unknown grant {grant_id}")
    if (grant.case_id, grant.agent_id) != (case_id, agent_id):
        raise FailedPrecondition(f"grant {grant_id} is for case {grant.case_id} "
                                 f"on agent {grant.agent_id}")
    if grant.engineer_key_id != engineer_key_id:
        raise FailedPrecondition(f"grant {grant_id} is for another key than your certificate's")
    if grant.revoked_at is not None:
        raise FailedPrecondition(f"grant {grant_id} was revoked")
    if not grant.active_at(now):
        raise FailedPrecondition(f"grant {grant_id} is not valid now")
    return grant


def check_session_for(session: Session | None, session_id: str, engineer: str) -> Session:
    """The session exists and belongs to ``engineer``."""
    if session is None:
        raise NotFound(f"unknown session {session_id}")
    if session.engineer != engineer:
        raise PermissionDenied(f"{engineer} used session {session_id} of {session.engineer}")
    return session
