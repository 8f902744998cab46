"""RecordsService: read-only views of cases, sessions and the consent log.

An engineer whose key is locked reads nothing here (as they may do nothing else), and an
engineer fetches support bundles (log and configuration content) only of the cases
assigned to them; auditors and admins read everything.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import grpc
from sqlalchemy.engine import Connection

from controller.authz import current_caller
from controller.errors import InvalidArgument, NotFound, PermissionDenied
from controller.gateway.recording import recording_blob, recordings
from controller.services import _common, _convert, archive
from controller.services._common import Deps
from controller.services._downloads import download
from controller.services.locks import refuse_locked
from controller.store import bundles, cases, directory, requests, sessions
from controller.store.records import Case, ConsentEntry, Session, SessionEvent
from permissions.locks import Subject
from rmaint.v1 import controller_pb2 as pb
from rmaint.v1 import controller_pb2_grpc

CASE_STATUSES = ("", "open", "closed")
RECORDING_CHUNK = 1 << 20


class RecordsService(controller_pb2_grpc.RecordsServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def _reader(self, bundle_of: str = "") -> None:
        """PermissionDenied for an engineer whose key is locked, or (``bundle_of`` given)
        who is not the assignee of that case; a case not found is left to the caller."""
        caller = current_caller()
        if caller.role == "engineer":
            await self._deps.store.read(_engineer_may_read, caller.name, caller.key_id,
                                        bundle_of, self._deps.clock())

    async def ListCases(self, request: pb.ListCasesRequest,
                        context: grpc.aio.ServicerContext) -> pb.ListCasesResponse:
        await self._reader()
        status = _common.choice(request.status, "status", CASE_STATUSES)
        if request.limit > MAX_CASES_LISTED:
            raise InvalidArgument(f"limit: at most {MAX_CASES_LISTED}")
        found, total = await self._deps.store.read(
            _cases, status, request.customer_id, request.limit or DEFAULT_CASES_LISTED)
        return pb.ListCasesResponse(cases=[_convert.case(c) for c in found], total=total)

    async def GetCase(self, request: pb.GetCaseRequest,
                      context: grpc.aio.ServicerContext) -> pb.GetCaseResponse:
        await self._reader()
        case_id = _common.text(request.case_id, "case_id", limit=64)
        return await self._deps.store.read(_get_case, case_id)

    async def ListSessions(self, request: pb.ListSessionsRequest,
                           context: grpc.aio.ServicerContext) -> pb.ListSessionsResponse:
        await self._reader()
        case_id = _common.text(request.case_id, "case_id", required=False, limit=64)
        found = await self._deps.store.read(_sessions_of, case_id)
        return pb.ListSessionsResponse(sessions=[_convert.session(s) for s in found])

    async def GetSession(self, request: pb.GetSessionRequest,
                         context: grpc.aio.ServicerContext) -> pb.GetSessionResponse:
        await self._reader()
        session_id = _common.text(request.session_id, "session_id", limit=64)
        return await self._deps.store.read(_get_session, session_id)

    async def ConsentLog(self, request: pb.ConsentLogRequest,
                         context: grpc.aio.ServicerContext) -> pb.ConsentLogResponse:
        await self._reader()
        case_id = _common.text(request.case_id, "case_id", required=False, limit=64)
        agent_id = _common.text(request.agent_id, "agent_id", required=False, limit=64)
        if request.limit > MAX_CONSENT_LISTED:
            raise InvalidArgument(f"limit: at most {MAX_CONSENT_LISTED}")
        found, names, total = await self._deps.store.read(
            _consent_log, case_id, agent_id, request.limit or DEFAULT_CONSENT_LISTED)
        return pb.ConsentLogResponse(entries=[
            _convert.consent(e, names.get((e.agent_id, e.actor), "")) for e in found],
            total=total)

    async def GetCustomerArchive(
            self, request: pb.GetCustomerArchiveRequest,
            context: grpc.aio.ServicerContext) -> pb.GetCustomerArchiveResponse:
        await self._reader()
        customer_id = _common.name(request.customer_id, "customer_id")
        return await self._deps.store.read(archive.archive, customer_id, self._deps.clock())

    async def GetRecording(self, request: pb.GetRecordingRequest,
                           context: grpc.aio.ServicerContext) -> AsyncIterator[pb.RecordingChunk]:
        await self._reader()
        session_id = _common.text(request.session_id, "session_id", limit=64)
        found = await self._deps.store.read(_recordings, session_id)
        if not found:
            raise NotFound(f"session {session_id} has no recording")
        if not -len(found) <= request.index < len(found):
            raise NotFound(f"session {session_id} has {len(found)} recording(s)")
        with download():
            # The one asked for alone: a session may hold many, each up to 64 MiB.
            cast = await self._deps.store.read(recording_blob, found[request.index])
            if cast is None:
                raise NotFound("the recording is no longer stored (removed under retention)")
            digest = hashlib.sha256(cast).hexdigest()
            for start in range(0, max(len(cast), 1), RECORDING_CHUNK):
                yield pb.RecordingChunk(data=cast[start:start + RECORDING_CHUNK],
                                        sha256=digest, count=len(found))


    async def GetBundle(self, request: pb.GetBundleRequest,
                        context: grpc.aio.ServicerContext) -> AsyncIterator[pb.BundleChunk]:
        case_id = _common.text(request.case_id, "case_id", limit=64)
        sha256 = _common.text(request.sha256, "sha256", required=False, limit=64).lower()
        await self._reader(bundle_of=case_id)
        with download():
            async for chunk in self._bundle_chunks(case_id, sha256):
                yield chunk

    async def _bundle_chunks(self, case_id: str, sha256: str) -> AsyncIterator[pb.BundleChunk]:
        found = await self._deps.store.read(bundles.get_bundle, case_id, sha256)
        if found is None:
            if await self._deps.store.read(cases.get_case, case_id) is None:
                raise NotFound(f"unknown case {case_id}")  # as GetCase (bundle list) says
            raise NotFound(f"case {case_id} has no bundle" + (f" {sha256}" if sha256 else ""))
        bundle, data = found
        if data is None:
            raise NotFound("the bundle is no longer stored (removed under retention)")
        described = bundle_message(bundle)
        for start in range(0, max(len(data), 1), RECORDING_CHUNK):
            yield pb.BundleChunk(data=data[start:start + RECORDING_CHUNK], bundle=described)


def bundle_message(bundle: bundles.Bundle) -> pb.Bundle:
    return pb.Bundle(sha256=bundle.sha256, size=bundle.size, case_id=bundle.case_id,
                     session_id=bundle.session_id, event_id=bundle.event_id,
                     agent_id=bundle.agent_id, created_at=bundle.created_at,
                     stored=bundle.stored)


def _engineer_may_read(conn: Connection, name: str, key_id: str, bundle_of: str,
                       now: float) -> None:
    refuse_locked(conn, Subject(engineer_key_id=key_id), now, "read")
    if bundle_of:
        case = cases.get_case(conn, bundle_of)
        if case is not None and case.assignee != name:
            raise PermissionDenied(f"engineer {name} asked for a bundle of {bundle_of} "
                                   f"assigned to {case.assignee}")


def _sessions_of(conn: Connection, case_id: str) -> list[Session]:
    """All sessions, or a case's; NotFound for a case that does not exist."""
    if case_id and cases.get_case(conn, case_id) is None:
        raise NotFound(f"unknown case {case_id}")
    return sessions.list_sessions(conn, case_id=case_id)


# An entry with its signed statement is a few KB: a log stays inside a message.
DEFAULT_CONSENT_LISTED = 200
MAX_CONSENT_LISTED = 500
# A case with its title and resolution is at most a few KB: a list stays inside a message.
DEFAULT_CASES_LISTED = 200
MAX_CASES_LISTED = 1000


def _cases(conn: Connection, status: str, customer_id: str,
           limit: int) -> tuple[list[Case], int]:
    return (cases.list_cases(conn, status=status, customer_id=customer_id, limit=limit),
            cases.count_cases(conn, status=status, customer_id=customer_id))


def _recordings(conn: Connection, session_id: str) -> list[SessionEvent]:
    if sessions.get_session(conn, session_id) is None:
        raise NotFound(f"unknown session {session_id}")
    return recordings(conn, session_id)


def _consent_log(conn: Connection, case_id: str, agent_id: str, newest: int,
                 ) -> tuple[list[ConsentEntry], dict[tuple[str, str], str], int]:
    """The entries of that case and agent, and the names their agents report for approver
    keys; NotFound for a case or agent that does not exist (an empty log is a known case
    with no decisions yet)."""
    if case_id and cases.get_case(conn, case_id) is None:
        raise NotFound(f"unknown case {case_id}")
    if agent_id and directory.get_agent(conn, agent_id) is None:
        raise NotFound(f"unknown agent {agent_id}")
    entries = requests.consent_entries(conn, case_id=case_id, agent_id=agent_id,
                                       newest=newest)
    return (entries, directory.approver_names(conn, {e.agent_id for e in entries}),
            requests.count_consent_entries(conn, case_id=case_id, agent_id=agent_id))


def _get_case(conn: Connection, case_id: str) -> pb.GetCaseResponse:
    case = cases.get_case(conn, case_id)
    if case is None:
        raise NotFound(f"unknown case {case_id}")
    return pb.GetCaseResponse(
        case=_convert.case(case),
        sessions=[_convert.session(s) for s in
                  sessions.list_sessions(conn, case_id=case_id, newest_first=False)],
        requests=_convert.requests_with_grants(
            conn, requests.list_requests(conn, case_id=case_id, newest_first=False)),
        bundles=[bundle_message(b) for b in bundles.list_bundles(conn, case_id)],
    )


def _get_session(conn: Connection, session_id: str) -> pb.GetSessionResponse:
    session = sessions.get_session(conn, session_id)
    if session is None:
        raise NotFound(f"unknown session {session_id}")
    events = [_convert.event(e) for e in sessions.list_events(conn, session_id)]
    return pb.GetSessionResponse(session=_convert.session(session),
                                 events=_newest_within(events, SESSION_BUDGET),
                                 total_events=len(events))


# Bytes of events one answer carries: an operation's parameters and envelopes may be large
# (a refused one too), and a session with many must still be shown, its newest events first.
SESSION_BUDGET = 3 * 2**20


def _newest_within(events: list[pb.SessionEvent], budget: int) -> list[pb.SessionEvent]:
    kept: list[pb.SessionEvent] = []
    for event in reversed(events):
        budget -= event.ByteSize()
        if budget < 0:
            break
        kept.append(event)
    return kept[::-1]
