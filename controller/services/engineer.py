"""EngineerService: access requests, sessions and relayed operations (engineer identity only).

Everything an engineer files is signed by their own key; the controller checks that the
key is the one in the caller's certificate, so nobody files in another engineer's name.
Shell certificates (:mod:`controller.gateway.userca`) are issued only for that key too.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import grpc
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key
from sqlalchemy.engine import Connection

from controller import rules
from controller.authz import Caller
from controller.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from controller.gateway import userca
from controller.logs import log_event
from controller.services import _common, _convert
from controller.services._common import Deps, caller_as
from controller.services._operations import run_operation
from controller.services._streams import run_operation_stream
from controller.services.locks import refuse_locked
from controller.store import cases, directory, grants, requests, sessions
from controller.store.records import ConsentEntry, GrantRecord, RequestRecord, Session
from permissions import (
    AccessRequest,
    BadSignature,
    Envelope,
    MalformedStatement,
    key_id,
    verify_access_request,
)
from permissions.locks import Subject
from rmaint.v1 import agent_pb2, controller_pb2_grpc
from rmaint.v1 import controller_pb2 as pb


class EngineerService(controller_pb2_grpc.EngineerServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def RequestAccess(self, request: pb.RequestAccessRequest,
                            context: grpc.aio.ServicerContext) -> pb.RequestAccessResponse:
        caller = caller_as("engineer")
        envelope = _common.envelope(request.request, "request")
        statement = _verified_request(envelope)
        rules.check_signed_by_caller(statement, caller.name, caller.key_id)
        record = await self._deps.store.write(_file_request, statement, envelope,
                                              self._deps.clock())
        log_event("access.requested", request_id=record.request_id, case_id=record.case_id,
                  agent_id=record.agent_id, engineer=caller.name, scopes=list(record.scopes))
        return pb.RequestAccessResponse(request=_convert.request(record))

    async def ListMyRequests(self, request: pb.ListMyRequestsRequest,
                             context: grpc.aio.ServicerContext) -> pb.ListMyRequestsResponse:
        caller = caller_as("engineer")
        case_id = _common.text(request.case_id, "case_id", required=False, limit=64)
        found = await self._deps.store.read(_my_requests, caller.name, case_id)
        return pb.ListMyRequestsResponse(requests=found)

    async def OpenSession(self, request: pb.OpenSessionRequest,
                          context: grpc.aio.ServicerContext) -> pb.OpenSessionResponse:
        caller = caller_as("engineer")
        case_id = _common.text(request.case_id, "case_id", limit=64)
        agent_id = _common.name(request.agent_id, "agent_id")
        grant_id = _common.text(request.grant_id, "grant_id", required=False, limit=128)
        session, grant, agent_key = await self._deps.store.write(
            _open_session, caller, case_id, agent_id, grant_id, self._deps.clock())
        log_event("session.opened", session_id=session.session_id, case_id=case_id,
                  agent_id=agent_id, grant_id=grant.grant_id, engineer=caller.name)
        return pb.OpenSessionResponse(session=_convert.session(session),
                                      grant_not_after=grant.not_after, scopes=list(grant.scopes),
                                      agent_public_key=agent_key)

    async def RunOperation(self, request: agent_pb2.ExecuteRequest,
                           context: grpc.aio.ServicerContext) -> agent_pb2.ExecuteResponse:
        return await run_operation(self._deps, caller_as("engineer"), request)

    async def RunOperationStream(self, request: agent_pb2.ExecuteRequest,
                                 context: grpc.aio.ServicerContext,
                                 ) -> AsyncIterator[agent_pb2.StreamPart]:
        async for part in run_operation_stream(self._deps, caller_as("engineer"), request):
            yield part

    async def CloseSession(self, request: pb.CloseSessionRequest,
                           context: grpc.aio.ServicerContext) -> pb.CloseSessionResponse:
        caller = caller_as("engineer")
        session_id = _common.text(request.session_id, "session_id", limit=64)
        session = await self._deps.store.write(_close_session, caller, session_id,
                                               self._deps.clock())
        log_event("session.closed", session_id=session_id, engineer=caller.name)
        return pb.CloseSessionResponse(session=_convert.session(session))

    async def IssueShellCertificate(self, request: pb.IssueShellCertificateRequest,
                                    context: grpc.aio.ServicerContext,
                                    ) -> pb.IssueShellCertificateResponse:
        caller = caller_as("engineer")
        session_id = _common.text(request.session_id, "session_id", limit=64)
        if not userca.TICKET.match(request.ticket):
            raise InvalidArgument("ticket must be a shell ticket (32 hex digits)")
        if request.valid_seconds < 0 or request.ticket_expires_at <= 0:
            raise InvalidArgument("valid_seconds must be ≥ 0 and ticket_expires_at given")
        subject = _callers_key(request.public_key, caller)
        ca = self._deps.shell_ca.ca
        if ca is None:
            raise FailedPrecondition("the SSH gateway is off on this controller")
        now = self._deps.clock()
        session = await self._deps.store.read(_certificate_session, caller, session_id, now)
        until = request.ticket_expires_at
        if request.valid_seconds:
            until = min(until, now + request.valid_seconds)
        if until < now + 1:
            raise FailedPrecondition("the ticket has run out: run shell.open again")
        issued = ca.issue(subject, agent_id=session.agent_id, ticket=request.ticket,
                          key_id=f"{caller.name}/{session_id}", now=now, valid_before=until)
        log_event("shell.certificate.issued", session_id=session_id, engineer=caller.name,
                  agent_id=session.agent_id, valid_before=issued.valid_before)
        return pb.IssueShellCertificateResponse(
            certificate=issued.line, principal=issued.principal,
            valid_after=issued.valid_after, valid_before=issued.valid_before)


def _my_requests(conn: Connection, engineer: str, case_id: str) -> list[pb.AccessRequest]:
    if case_id and cases.get_case(conn, case_id) is None:  # none yet is another answer
        raise NotFound(f"unknown case {case_id}")
    return _convert.requests_with_grants(
        conn, requests.list_requests(conn, engineer=engineer, case_id=case_id))


def _verified_request(envelope: Envelope) -> AccessRequest:
    try:
        return verify_access_request(envelope, new=True)
    except BadSignature as exc:
        raise PermissionDenied(f"access request signature: {exc}") from exc
    except MalformedStatement as exc:
        raise InvalidArgument(f"request: {exc}") from exc


def _file_request(conn: Connection, statement: AccessRequest, envelope: Envelope,
                  now: float) -> RequestRecord:
    case = rules.check_case_for(cases.get_case(conn, statement.case_id), statement.case_id,
                                statement.engineer)
    rules.check_request_target(case, directory.get_agent(conn, statement.agent_id),
                               statement.agent_id,
                               directory.get_customer(conn, case.customer_id), now)
    refuse_locked(conn, Subject(agent_id=statement.agent_id, case_id=statement.case_id,
                                engineer_key_id=statement.engineer_key_id), now, "access request")
    waiting = requests.count_pending(conn, engineer=statement.engineer,
                                     agent_id=statement.agent_id, since=now - rules.REQUEST_TTL)
    if waiting >= rules.MAX_PENDING_REQUESTS:
        raise FailedPrecondition(f"{waiting} of your requests to {statement.agent_id} await "
                                 "the customer's decision: wait for decisions, or for them "
                                 "to expire (a day after they were filed)")
    record = RequestRecord(
        request_id=statement.request_id, case_id=statement.case_id,
        agent_id=statement.agent_id, engineer=statement.engineer,
        engineer_key_id=statement.engineer_key_id, scopes=statement.scopes,
        duration_seconds=statement.duration_seconds, reason=statement.reason,
        status=requests.PENDING, created_at=now, grant_id=None, envelope=envelope,
    )
    requests.add_request(conn, record)
    requests.append_consent(conn, ConsentEntry(
        entry_id=None, at=now, kind="requested", request_id=record.request_id, grant_id=None,
        case_id=record.case_id, agent_id=record.agent_id, actor=record.engineer,
        reason=record.reason, scopes=record.scopes, envelope=envelope,
    ))
    return record


def _open_session(conn: Connection, caller: Caller, case_id: str, agent_id: str,
                  grant_id: str, now: float) -> tuple[Session, GrantRecord, bytes]:
    """The new session, its grant and the agent's enrolled public key (SPKI DER), which
    the engineer's client checks the agent's receipts against."""
    rules.check_case_for(cases.get_case(conn, case_id), case_id, caller.name)
    if grant_id:
        found = grants.get_grant(conn, grant_id)
    else:
        found = grants.newest_active_grant(conn, case_id=case_id, agent_id=agent_id,
                                           engineer_key_id=caller.key_id, now=now)
        if found is None:
            raise FailedPrecondition(f"no active grant for you on case {case_id} "
                                     f"and agent {agent_id}")
        grant_id = found.grant_id
    grant = rules.check_grant_usable(found, grant_id, case_id=case_id, agent_id=agent_id,
                                     engineer_key_id=caller.key_id, now=now)
    refuse_locked(conn, Subject(agent_id=agent_id, grant_id=grant.grant_id, case_id=case_id,
                                engineer_key_id=caller.key_id), now, "session")
    session = Session(session_id=f"S-{secrets.token_hex(6)}", engineer=caller.name,
                      case_id=case_id, agent_id=agent_id, grant_id=grant.grant_id,
                      started_at=now, ended_at=None, end_reason=None)
    sessions.add_session(conn, session)
    agent = directory.get_agent(conn, agent_id)
    return session, grant, agent.public_key if agent is not None else b""


def _callers_key(der: bytes, caller: Caller) -> ec.EllipticCurvePublicKey:
    """``der`` as a key, if it is the key of the caller's certificate."""
    try:
        key = load_der_public_key(der)
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(f"public_key is not a SubjectPublicKeyInfo: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key_id(key) != caller.key_id:
        raise PermissionDenied(f"{caller} asked for a shell certificate on another key")
    return key


def _certificate_session(conn: Connection, caller: Caller, session_id: str,
                         now: float) -> Session:
    """The caller's open session, when the caller's key is the one enrolled and unlocked."""
    session = rules.check_session_for(sessions.get_session(conn, session_id), session_id,
                                      caller.name)
    if not session.is_open:
        raise FailedPrecondition(f"session {session_id} is closed ({session.end_reason})")
    enrolled = [p for p in directory.list_principals(conn)
                if p.role == "engineer" and p.name == caller.name]
    if not enrolled or enrolled[0].key_fingerprint != caller.key_id:
        raise PermissionDenied(f"{caller}'s key is not the one enrolled")
    refuse_locked(conn, Subject(agent_id=session.agent_id, grant_id=session.grant_id,
                                case_id=session.case_id, engineer_key_id=caller.key_id),
                  now, "shell certificate")
    return session


def _close_session(conn: Connection, caller: Caller, session_id: str, now: float) -> Session:
    rules.check_session_for(sessions.get_session(conn, session_id), session_id, caller.name)
    sessions.close_session(conn, session_id, "closed", now)
    closed = sessions.get_session(conn, session_id)
    assert closed is not None
    return closed
