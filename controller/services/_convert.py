"""Store records -> wire messages. Absent times become 0, absent texts "", as the protos say."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.engine import Connection

from controller.store import grants
from controller.store.records import (
    AgentRecord,
    Case,
    ConsentEntry,
    Customer,
    GrantRecord,
    Principal,
    RequestRecord,
    Session,
    SessionEvent,
)
from rmaint.envelopes import to_wire
from rmaint.v1 import controller_pb2 as pb


def customer(record: Customer) -> pb.Customer:
    return pb.Customer(customer_id=record.customer_id, name=record.name,
                       contract_start=record.contract_start.isoformat(),
                       contract_end=record.contract_end.isoformat())


def agent(record: AgentRecord) -> pb.Agent:
    return pb.Agent(agent_id=record.agent_id, customer_id=record.customer_id,
                    address=record.address, enrolled_at=int(record.enrolled_at),
                    last_seen=int(record.last_seen or 0))


def principal(record: Principal) -> pb.Principal:
    return pb.Principal(role=record.role, name=record.name,
                        key_fingerprint=record.key_fingerprint,
                        enrolled_at=int(record.enrolled_at))


def case(record: Case) -> pb.Case:
    return pb.Case(case_id=record.case_id, customer_id=record.customer_id, title=record.title,
                   status=record.status, assignee=record.assignee,
                   opened_at=int(record.opened_at), closed_at=int(record.closed_at or 0),
                   resolution=record.resolution)


def request(record: RequestRecord, grant: GrantRecord | None = None) -> pb.AccessRequest:
    """The request as filed, with what the customer granted once the grant is reported."""
    return pb.AccessRequest(
        request_id=record.request_id, case_id=record.case_id, agent_id=record.agent_id,
        engineer=record.engineer, scopes=list(record.scopes),
        duration_seconds=record.duration_seconds, reason=record.reason, status=record.status,
        created_at=int(record.created_at), grant_id=record.grant_id or "",
        granted_scopes=list(grant.scopes) if grant else [],
        granted_until=grant.not_after if grant else 0,
    )


def requests_with_grants(conn: Connection,
                         records: Sequence[RequestRecord]) -> list[pb.AccessRequest]:
    """``records`` as messages, each with its reported grant (one query for all)."""
    granted = grants.grants_by_id(conn, {r.grant_id for r in records if r.grant_id})
    return [request(r, granted.get(r.grant_id or "")) for r in records]


def session(record: Session) -> pb.Session:
    return pb.Session(session_id=record.session_id, engineer=record.engineer,
                      case_id=record.case_id, agent_id=record.agent_id,
                      grant_id=record.grant_id, started_at=int(record.started_at),
                      ended_at=int(record.ended_at or 0), end_reason=record.end_reason or "")


def event(record: SessionEvent) -> pb.SessionEvent:
    message = pb.SessionEvent(
        event_id=record.event_id or 0, session_id=record.session_id, seq=record.seq,
        engineer=record.engineer, operation=record.operation,
        params_json=record.params_json, outcome=record.outcome, detail=record.detail,
        started_at=record.started_at, duration_ms=record.duration_ms or 0.0,
        operation_envelope=to_wire(record.operation_envelope),
    )
    if record.receipt is not None:
        message.receipt.CopyFrom(to_wire(record.receipt))
    return message


def consent(record: ConsentEntry, actor_name: str = "") -> pb.ConsentEntry:
    """``actor_name``: the name the agent reports for the approver key that acted."""
    message = pb.ConsentEntry(
        entry_id=record.entry_id or 0, at=int(record.at), kind=record.kind,
        request_id=record.request_id, grant_id=record.grant_id or "",
        case_id=record.case_id, agent_id=record.agent_id, actor=record.actor,
        reason=record.reason, scopes=list(record.scopes), actor_name=actor_name,
    )
    if record.envelope is not None:
        message.envelope.CopyFrom(to_wire(record.envelope))
    return message
