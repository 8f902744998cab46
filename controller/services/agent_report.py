"""AgentReportService: what agents tell the controller and fetch from it.

The agent is always the caller's certificate identity, never a request field. Consent
decisions count only when signed by an approver key the agent itself reported (and the
agent pins those keys locally: the controller cannot add one).
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Mapping

import grpc
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy.engine import Connection

from controller.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from controller.gateway.reverse import SHELL_TICKET_HEADER
from controller.logs import log_event
from controller.rules import REQUEST_TTL
from controller.services import _common, archive, inspection, witness
from controller.services import locks as _locks
from controller.services._common import Deps, caller_as
from controller.services._decisions import record_change_consent, record_decision
from controller.store import directory, requests
from controller.store.records import AgentRecord
from permissions import (
    CHANGE_CONSENT,
    BadSignature,
    ChangeConsentInvalid,
    Envelope,
    MalformedStatement,
    PublicKey,
    key_id,
    load_public_key,
    open_change_consent,
    verify_decision,
)
from permissions.locks import Subject
from rmaint.envelopes import to_wire
from rmaint.v1 import agent_pb2, common_pb2, controller_pb2_grpc
from rmaint.v1 import controller_pb2 as pb

_TICKET = re.compile(r"[0-9a-f]{32}")

MAX_APPROVER_KEYS = 32


class AgentReportService(controller_pb2_grpc.AgentReportServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def _agent(self) -> str:
        """The calling agent's id, if its certificate is for the key enrolled now.

        An agent enrolled again (a new host, a new key) leaves the old key's certificate
        valid to TLS until it expires: it must not speak for the agent any more."""
        caller = caller_as("agent")
        await self._deps.store.read(_enrolled_key, caller.name, caller.key_id)
        return caller.name

    async def FetchRequests(self, request: pb.FetchRequestsRequest,
                            context: grpc.aio.ServicerContext) -> pb.FetchRequestsResponse:
        agent_id = await self._agent()
        found = await self._deps.store.read(_pending, agent_id,
                                            self._deps.clock() - REQUEST_TTL)
        return pb.FetchRequestsResponse(requests=within_budget(found))

    async def ReportConsent(self, request: pb.ReportConsentRequest,
                            context: grpc.aio.ServicerContext) -> pb.ReportConsentResponse:
        agent_id = await self._agent()
        envelope = _common.envelope(request.decision, "decision")
        what = await self._deps.store.write(_report, agent_id, envelope, self._deps.clock())
        log_event("consent.reported", agent_id=agent_id, kind=envelope.payload_type,
                  result=what)
        return pb.ReportConsentResponse()

    async def Heartbeat(self, request: pb.HeartbeatRequest,
                        context: grpc.aio.ServicerContext) -> pb.HeartbeatResponse:
        agent_id = await self._agent()
        address = _common.address(request.address, "address") if request.address else ""
        keys = approver_keys(request.approver_keys)
        names = _approver_names(agent_id, request.approver_names, keys)
        now = self._deps.clock()
        inventory = _inventory(agent_id, request)
        await self._deps.store.write(_heartbeat, agent_id, address, keys, now, inventory, names)
        return pb.HeartbeatResponse(server_time=now)

    async def ReportInspection(self, request: pb.ReportInspectionRequest,
                               context: grpc.aio.ServicerContext) -> pb.ReportInspectionResponse:
        agent_id = await self._agent()
        run = inspection.parse_run(request.run)
        recorded = await self._deps.store.write(inspection.record_run, agent_id, run,
                                                self._deps.clock())
        log_event("inspection.reported", agent_id=agent_id, run_id=run.run_id,
                  findings=len(run.findings), duplicate=recorded.duplicate,
                  opened=list(recorded.opened), cleared=list(recorded.cleared))
        if recorded.held:
            log_event("inspection.cases_held", logging.WARNING, agent_id=agent_id,
                      run_id=run.run_id, findings=len(recorded.held),
                      limit=inspection.MAX_OPEN_CASES)
        return pb.ReportInspectionResponse(server_time=self._deps.clock())

    async def Witness(self, request: pb.WitnessRequest,
                      context: grpc.aio.ServicerContext) -> pb.WitnessResponse:
        """Check, mirror and cosign the agent's log (see :mod:`controller.services.witness`)."""
        return await witness.serve_witness(self._deps, await self._agent(), request)

    async def CosignCheckpoint(self, request: pb.CosignCheckpointRequest,
                               context: grpc.aio.ServicerContext
                               ) -> pb.CosignCheckpointResponse:
        return await witness.serve_cosign(self._deps, await self._agent(), request)

    async def Connect(self, request_iterator: AsyncIterator[pb.AgentFrame],
                      context: grpc.aio.ServicerContext) -> AsyncIterator[pb.ControllerFrame]:
        """Dial-out mode: hold the agent's stream (see :mod:`controller.dialin`)."""
        agent_id = await self._agent()
        if self._deps.relay.dialin is None:
            raise FailedPrecondition("this controller does not serve dial-out agents")
        async for frame in self._deps.relay.dialin.serve(agent_id, request_iterator, context):
            yield frame

    async def ShellLink(self, request_iterator: AsyncIterator[agent_pb2.ShellServerMessage],
                        context: grpc.aio.ServicerContext,
                        ) -> AsyncIterator[agent_pb2.ShellClientMessage]:
        """Dial-out mode: a shell stream waiting for its login (controller.gateway.reverse)."""
        agent_id = await self._agent()
        metadata = dict(context.invocation_metadata() or ())
        ticket = metadata.get(SHELL_TICKET_HEADER, "")
        if not isinstance(ticket, str) or not _TICKET.fullmatch(ticket):
            raise InvalidArgument(f"{SHELL_TICKET_HEADER} must be a shell ticket (32 hex)")
        await self._deps.store.read(_may_offer_shell, agent_id, self._deps.clock())
        async for message in self._deps.reverse_shells.serve(agent_id, ticket,
                                                             request_iterator):
            yield message

    async def FetchLocks(self, request: pb.FetchLocksRequest,
                         context: grpc.aio.ServicerContext) -> agent_pb2.LockSet:
        """The locks in force for the calling agent (also for a locked one: they only
        restrict)."""
        return await _locks.fetch_locks(self._deps, await self._agent())


FETCH_BUDGET = 2 * 2**20  # bytes of requests per fetch: well inside a 4 MiB message


def within_budget(found: list[Envelope]) -> list[common_pb2.Envelope]:
    """The newest of ``found`` (oldest first) that fit in FETCH_BUDGET, oldest first: the
    rest come once these are decided, and old ones never keep a new one out."""
    kept: list[common_pb2.Envelope] = []
    size = 0
    for envelope in reversed(found):
        message = to_wire(envelope)
        size += message.ByteSize()
        if size > FETCH_BUDGET:
            break
        kept.append(message)
    return kept[::-1]


def approver_keys(reported: Mapping[str, bytes]) -> dict[str, bytes]:
    """The reported keys, each an Ed25519 key whose id is its ``key_id``."""
    if len(reported) > MAX_APPROVER_KEYS:
        raise InvalidArgument(f"at most {MAX_APPROVER_KEYS} approver keys")
    keys: dict[str, bytes] = {}
    for kid, raw in reported.items():
        try:
            key = load_public_key(bytes(raw))
        except (MalformedStatement, ValueError) as exc:
            raise InvalidArgument(f"approver key {kid}: not a public key") from exc
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise InvalidArgument(f"approver key {kid}: approver keys are Ed25519")
        if key_id(key) != kid:
            raise InvalidArgument(f"approver key {kid}: id does not match the key")
        keys[kid] = bytes(raw)
    return keys


def _approver_names(agent_id: str, reported: Mapping[str, str],
                    keys: Mapping[str, bytes]) -> dict[str, str]:
    """The reported names of reported keys that are names; the others are logged and
    left out (a name is shown, never trusted: it does not cost the heartbeat)."""
    names: dict[str, str] = {}
    for kid, given in reported.items():
        try:
            if kid not in keys:
                raise InvalidArgument(f"names key {kid[:23]}, which the agent does not report")
            names[kid] = _common.name(given, "approver name")
        except InvalidArgument as exc:
            log_event("agent.approver_name_refused", logging.WARNING, agent_id=agent_id,
                      error=str(exc))
    return names


def _enrolled(conn: Connection, agent_id: str) -> AgentRecord:
    agent = directory.get_agent(conn, agent_id)
    if agent is None:
        raise PermissionDenied(f"agent {agent_id} holds a certificate but is not enrolled")
    return agent


def _enrolled_key(conn: Connection, agent_id: str, key_id: str) -> None:
    agent = _enrolled(conn, agent_id)
    if agent.key_fingerprint != key_id:
        raise PermissionDenied(f"agent {agent_id} called with the certificate of key {key_id}, "
                               f"not of the key enrolled now ({agent.key_fingerprint})")


def _may_offer_shell(conn: Connection, agent_id: str, now: float) -> None:
    """PermissionDenied for an agent not enrolled or locked: it offers no shell stream."""
    _enrolled(conn, agent_id)
    _locks.refuse_locked(conn, Subject(agent_id=agent_id), now, "shell stream")


def _pending(conn: Connection, agent_id: str, since: float) -> list[Envelope]:
    _enrolled(conn, agent_id)
    return [r.envelope for r in requests.pending_for_agent(conn, agent_id, since)]


def _heartbeat(conn: Connection, agent_id: str, address: str, keys: dict[str, bytes],
               now: float, inventory: pb.AgentInventory | None = None,
               names: Mapping[str, str] | None = None) -> None:
    agent = _enrolled(conn, agent_id)
    directory.touch_agent(conn, agent_id, address or agent.address, now)
    directory.replace_approver_keys(conn, agent_id, keys, now, names)
    if inventory is not None:
        archive.save_inventory(conn, agent_id, inventory, now)


def _report(conn: Connection, agent_id: str, envelope: Envelope, now: float) -> str:
    _enrolled(conn, agent_id)
    keys: dict[str, PublicKey] = {
        kid: load_public_key(raw)
        for kid, raw in directory.get_approver_keys(conn, agent_id).items()
    }
    if envelope.payload_type == CHANGE_CONSENT:
        try:
            consent = open_change_consent(envelope, keys)
        except ChangeConsentInvalid as exc:
            raise PermissionDenied(f"agent {agent_id} reported a change consent that does not "
                                   f"verify: {exc.reason}") from exc
        return record_change_consent(conn, agent_id, consent, envelope, now)
    try:
        decision = verify_decision(envelope, keys)
    except BadSignature as exc:
        raise PermissionDenied(f"agent {agent_id} reported a decision not signed by an "
                               "approver key it reported") from exc
    except MalformedStatement as exc:
        raise InvalidArgument(f"decision: {exc}") from exc
    return record_decision(conn, agent_id, decision, envelope, now)


def _inventory(agent_id: str, request: pb.HeartbeatRequest) -> pb.AgentInventory | None:
    """The heartbeat's inventory if it can be kept. One that cannot (impossible values,
    control characters) is logged and left out: the heartbeat itself still counts, so one
    odd string does not take the agent offline."""
    if not request.HasField("inventory"):
        return None
    try:
        return archive.checked_inventory(request.inventory)
    except InvalidArgument as exc:
        log_event("agent.inventory_refused", logging.WARNING, agent_id=agent_id,
                  reason=str(exc))
        return None
