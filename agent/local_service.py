"""AgentLocalService: the customer's own commands, served on the agent's Unix socket.

Approve, Deny and Revoke accept only decisions signed by an approver key pinned in
agent.toml; they are stored durably before anything is reported to the controller,
and a controller that cannot be reached only delays the report.

Engineer keys are pinned here, by the customer's approvals (trust on first use): the
first grant for an engineer name pins the key it names; a request from that name signed
by another key is listed as ``key_changed`` and its grant is refused unless the customer
sets ``accept_new_key``. Only this service (the customer's socket) lists or forgets pins.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TypeAlias

import grpc

from agent.change_local import ChangeLocalMethods
from agent.changes import ChangeStore
from agent.consent import verify_denial, verify_grant
from agent.dispatcher import Dispatcher
from agent.errors import BadInput, ConsentRejected, NotFound
from agent.rpc import envelope_field, peek_field, translated
from agent.shell.live import LiveShells
from agent.shell.local import ShellLocalMethods
from agent.state import PinnedKey, StateStore, StoredRequest, key_changed
from agent.sync import SyncLoop
from agent.trust import PinnedTrust
from permissions import Envelope
from rmaint.envelopes import to_wire
from rmaint.v1 import agent_pb2, agent_pb2_grpc

Context: TypeAlias = grpc.aio.ServicerContext
_log = logging.getLogger("agent.local")


class LocalServicer(ShellLocalMethods, ChangeLocalMethods,
                    agent_pb2_grpc.AgentLocalServiceServicer):
    def __init__(self, *, agent_id: str, listen: str, controller: str, state: StateStore,
                 dispatcher: Dispatcher, trust: PinnedTrust, sync: SyncLoop,
                 clock: Callable[[], float] = time.time,
                 shells: LiveShells | None = None, changes: ChangeStore | None = None) -> None:
        self._agent_id = agent_id
        self._listen = listen
        self._controller = controller
        self._state = state
        self._dispatcher = dispatcher
        self._trust = trust
        self._sync = sync
        self._clock = clock
        self._shells = shells if shells is not None else LiveShells(clock)
        self._changes = changes
        # Consent and denial of changes, and revocations, one at a time: a consent is never
        # stored between another decision's check and its write.
        self._decisions = asyncio.Lock()

    @translated
    async def ListRequests(self, request: agent_pb2.ListRequestsRequest,
                           context: Context) -> agent_pb2.ListRequestsResponse:
        sync_error = await self._sync.sync_now() if request.sync else ""
        stored = await asyncio.to_thread(self._state.list_requests)
        pins: dict[str, list[PinnedKey]] = {}
        for pin in await asyncio.to_thread(self._state.engineer_keys):
            pins.setdefault(pin.engineer, []).append(pin)
        now = self._clock()
        rows = [_pending_request(s, now, pins.get(s.request.engineer, []))
                for s in stored if request.include_decided or s.status_at(now) == "pending"]
        return agent_pb2.ListRequestsResponse(requests=rows, sync_error=sync_error)

    @translated
    async def Approve(self, request: agent_pb2.ApproveRequest,
                      context: Context) -> agent_pb2.ApproveResponse:
        envelope = envelope_field(request.grant, request.HasField("grant"), "grant")
        grant_id = str(peek_field(envelope, "grant_id"))
        existing = await asyncio.to_thread(self._state.get_grant, grant_id)
        if existing is not None and existing.envelope == envelope:  # a retry: report again
            return agent_pb2.ApproveResponse(grant_id=grant_id,
                                             reported=await self._sync.report(envelope))
        now = self._clock()
        asked = await self._request_named(envelope)
        grant = verify_grant(envelope, self._trust.current(), asked, now)
        approver = next((a.name for a in self._trust.approvers()
                         if a.key_id == grant.approver_key_id), "")
        pinned = await asyncio.to_thread(self._state.engineer_keys, grant.engineer)
        # Another decision may have won since the pending check above: store_grant checks
        # again in its transaction and raises ConsentRejected if so. It also pins the
        # engineer key, or refuses (KeyChanged) a new key the customer did not accept.
        if not await asyncio.to_thread(
                lambda: self._state.store_grant(envelope, grant, now, approver=approver,
                                                accept_new_key=request.accept_new_key)):
            existing = await asyncio.to_thread(self._state.get_grant, grant_id)
            if existing is None or existing.envelope != envelope:
                raise ConsentRejected(f"grant id {grant.grant_id} is already in use")
        elif all(k.key_id != grant.engineer_key_id for k in pinned):
            _log.log(logging.WARNING if pinned else logging.INFO,
                     "new engineer key accepted and pinned" if pinned else "engineer key pinned",
                     extra={"fields": {"engineer": grant.engineer,
                                       "key_id": grant.engineer_key_id,
                                       "previous": [k.key_id for k in pinned],
                                       "request_id": grant.request_id, "approver": approver}})
        return agent_pb2.ApproveResponse(grant_id=grant.grant_id,
                                         reported=await self._sync.report(envelope))

    @translated
    async def Deny(self, request: agent_pb2.DenyRequest,
                   context: Context) -> agent_pb2.DenyResponse:
        envelope = envelope_field(request.denial, request.HasField("denial"), "denial")
        now = self._clock()
        asked = await self._request_named(envelope)
        denial = verify_denial(envelope, self._trust.current(), asked, now)
        # store_denial refuses (ConsentRejected) if another decision won meanwhile.
        await asyncio.to_thread(self._state.store_denial, envelope, denial, now)
        return agent_pb2.DenyResponse(reported=await self._sync.report(envelope))

    @translated
    async def Revoke(self, request: agent_pb2.RevokeRequest,
                     context: Context) -> agent_pb2.RevokeResponse:
        envelope = envelope_field(request.revocation, request.HasField("revocation"),
                                  "revocation")
        async with self._decisions:
            revoked = await self._dispatcher.revoke(envelope)
        return agent_pb2.RevokeResponse(cancelled_operations=revoked.cancelled,
                                        reported=await self._sync.report(envelope))

    @translated
    async def ListGrants(self, request: agent_pb2.ListGrantsRequest,
                         context: Context) -> agent_pb2.ListGrantsResponse:
        stored = await asyncio.to_thread(self._state.list_grants)
        now = self._clock()
        unsaved = self._dispatcher.unsaved_revocations()
        rows = []
        for grant in stored:
            # A revocation in force but not yet on disk is shown as such, never as active.
            status = ("revoked (not yet saved)" if grant.grant.grant_id in unsaved
                      else grant.status_at(now))
            if request.include_inactive or status in ("active", "not-yet-valid"):
                rows.append(agent_pb2.GrantState(grant=to_wire(grant.envelope), status=status,
                                                 revoked_at=int(grant.revoked_at or 0)))
        return agent_pb2.ListGrantsResponse(grants=rows)

    @translated
    async def Status(self, request: agent_pb2.StatusRequest,
                     context: Context) -> agent_pb2.StatusResponse:
        unreported = await asyncio.to_thread(self._state.unreported_count)
        return agent_pb2.StatusResponse(
            agent_id=self._agent_id, listen=self._listen, controller=self._controller,
            approver_key_ids=[a.key_id for a in self._trust.approvers()],
            operations_in_flight=self._dispatcher.in_flight(), unreported=unreported)

    @translated
    async def Sync(self, request: agent_pb2.SyncRequest,
                   context: Context) -> agent_pb2.SyncResponse:
        """A sync round, then a witnessing round (not tried when the controller could not
        be used: it would only wait out the same failure again)."""
        sync_error = await self._sync.sync_now()
        if sync_error:
            return agent_pb2.SyncResponse(sync_error=sync_error,
                                          witness_error="not tried: the sync failed")
        progress, witness_error = await self._sync.witness_now()
        if progress is None:
            return agent_pb2.SyncResponse(witness_error=witness_error or "no round ran")
        return agent_pb2.SyncResponse(
            mirrored=progress.mirrored, cosigned=progress.cosigned, size=progress.size,
            controller_size=progress.controller_size)

    @translated
    async def ListEngineerKeys(self, request: agent_pb2.ListEngineerKeysRequest,
                               context: Context) -> agent_pb2.ListEngineerKeysResponse:
        pins = await asyncio.to_thread(self._state.engineer_keys)
        return agent_pb2.ListEngineerKeysResponse(keys=[_engineer_key(k) for k in pins])

    @translated
    async def ForgetEngineerKeys(self, request: agent_pb2.ForgetEngineerKeysRequest,
                                 context: Context) -> agent_pb2.ForgetEngineerKeysResponse:
        if not request.engineer:
            raise BadInput("engineer is required")
        forgotten = await asyncio.to_thread(self._state.forget_engineer_keys,
                                            request.engineer, request.key_id)
        if not forgotten:
            which = f"key {request.key_id} " if request.key_id else "key "
            raise NotFound(f"no {which}is pinned for engineer {request.engineer}")
        _log.warning("engineer key pins removed by the customer", extra={"fields": {
            "engineer": request.engineer, "key_ids": [k.key_id for k in forgotten]}})
        return agent_pb2.ForgetEngineerKeysResponse(
            forgotten=[_engineer_key(k) for k in forgotten])

    async def _request_named(self, envelope: Envelope) -> StoredRequest | None:
        request_id = peek_field(envelope, "request_id")
        if not isinstance(request_id, str):
            return None
        return await asyncio.to_thread(self._state.get_request, request_id)


def _engineer_key(pin: PinnedKey) -> agent_pb2.EngineerKey:
    return agent_pb2.EngineerKey(
        engineer=pin.engineer, key_id=pin.key_id, pinned_at=int(pin.pinned_at),
        approver_key_id=pin.approver_key_id, approver=pin.approver,
        request_id=pin.request_id, grant_id=pin.grant_id)


def _pending_request(stored: StoredRequest, now: float,
                     pinned: list[PinnedKey]) -> agent_pb2.PendingRequest:
    return agent_pb2.PendingRequest(
        request=to_wire(stored.envelope), status=stored.status_at(now),
        received_at=int(stored.received_at), key_changed=key_changed(stored.request, pinned),
        pinned_keys=[_engineer_key(k) for k in pinned])
