"""The customer's side of previewed changes on the local socket: list, consent, deny.

A mixin for :class:`agent.local_service.LocalServicer`, which sets ``_changes``,
``_trust`` and ``_clock``. Previews are listed with their unmasked images: the socket is
the customer's own. A consent is stored only if a pinned approver key signed it for a
pending, unexpired preview, naming the agent, case, grant and engineer key the preview
was made under, and if it is valid now and ends no later than the preview.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import grpc

from agent.changes import ChangeStore, StoredPreview
from agent.dispatcher import Dispatcher
from agent.errors import BadInput, ConsentRejected, NotFound
from agent.rpc import envelope_field, translated
from agent.state import StateStore
from agent.sync import SyncLoop
from agent.trust import PinnedTrust
from permissions import (
    ChangeConsent,
    ChangeConsentInvalid,
    ChangeContext,
    Envelope,
    Grant,
    is_plain_text,
    verify_change_consent,
)
from rmaint.v1 import agent_pb2 as pb

_log = logging.getLogger("agent.local")


class ChangeLocalMethods:
    _changes: ChangeStore | None
    _decisions: asyncio.Lock
    _dispatcher: Dispatcher
    _state: StateStore
    _sync: SyncLoop
    _trust: PinnedTrust
    _clock: Callable[[], float]

    @translated
    async def ListChanges(self, request: pb.ListChangesRequest,
                          context: grpc.aio.ServicerContext) -> pb.ListChangesResponse:
        now, store = self._clock(), self._store()
        # Pending: not decided and not expired; otherwise every change, whatever its status.
        which: dict[str, Any] = {"prefix": request.digest_prefix} if request.include_decided \
            else {"prefix": request.digest_prefix, "status": "pending", "now": now}
        found = await asyncio.to_thread(store.previews, limit=request.limit or None, **which)
        total = await asyncio.to_thread(store.count, **which)
        return pb.ListChangesResponse(changes=[_message(s, now) for s in found], total=total)

    @translated
    async def ApproveChange(self, request: pb.ApproveChangeRequest,
                            context: grpc.aio.ServicerContext) -> pb.ApproveChangeResponse:
        envelope = envelope_field(request.consent, request.HasField("consent"), "consent")
        async with self._decisions:
            stored = await self._approve_change(envelope)
        # Now, not at the next sync: the controller's log then holds the consent before the
        # apply it allows (which the engineer runs once the customer says so).
        stored.reported = await self._sync.report(envelope)
        return stored

    async def _approve_change(self, envelope: Envelope) -> pb.ApproveChangeResponse:
        store, now = self._store(), self._clock()
        digest = _peek_digest(envelope.payload)
        stored = await self._pending(digest, now)
        await self._grant_in_force(stored.grant_id, now)
        await self._not_consented(store, digest, now)
        context_of = ChangeContext(change_digest=stored.digest, agent_id=stored.agent_id,
                                   case_id=stored.case_id, grant_id=stored.grant_id,
                                   engineer_key_id=stored.engineer_key_id)
        try:
            consent = verify_change_consent(envelope, self._trust.current().approver_keys,
                                            context_of, now=int(now))
        except ChangeConsentInvalid as exc:
            raise ConsentRejected(f"the consent cannot be accepted: {exc.reason}") from exc
        if consent.not_after > stored.expires_at:
            raise ConsentRejected("the consent outlives the preview")
        if not await asyncio.to_thread(store.add_consent, consent.consent_id, digest,
                                       envelope, now):
            raise ConsentRejected(f"consent id {consent.consent_id} is already in use")
        # For the controller's consent log, as grants are: sent by the sync loop.
        await asyncio.to_thread(self._state.queue_report, "change-consent", envelope, now)
        _log.info("change consent stored", extra={"fields": {
            "digest": digest, "consent_id": consent.consent_id,
            "approver_key_id": consent.approver_key_id, "not_after": consent.not_after}})
        return pb.ApproveChangeResponse(consent_id=consent.consent_id, digest=digest,
                                        not_after=consent.not_after)

    @translated
    async def DenyChange(self, request: pb.DenyChangeRequest,
                         context: grpc.aio.ServicerContext) -> pb.DenyChangeResponse:
        async with self._decisions:
            return await self._deny_change(request)

    async def _deny_change(self, request: pb.DenyChangeRequest) -> pb.DenyChangeResponse:
        await self._pending(request.digest, self._clock())
        reason = request.reason.strip()[:500]
        if not is_plain_text(reason):
            raise BadInput("a reason is one line of text, without control characters")
        if not await asyncio.to_thread(self._store().set_status, request.digest, "denied",
                                       reason, only_from="pending"):
            raise ConsentRejected(f"change {request.digest} is no longer pending")
        _log.info("change denied by the customer", extra={"fields": {
            "digest": request.digest, "reason": reason}})
        return pb.DenyChangeResponse(digest=request.digest)

    def _store(self) -> ChangeStore:
        if self._changes is None:
            raise NotFound("this agent keeps no changes")
        return self._changes

    async def _grant_in_force(self, grant_id: str, now: float) -> None:
        """ConsentRejected unless the grant the change was previewed under still holds: the
        engineer could not apply it, and the consent log would show consent after the end."""
        found = await asyncio.to_thread(self._state.get_grant, grant_id)
        if found is None:
            raise ConsentRejected(f"the change's grant {grant_id} is not known here")
        if found.revoked_at is not None or self._dispatcher.is_revoked(grant_id):
            raise ConsentRejected(f"the change's grant {grant_id} was revoked: it can no "
                                  "longer be applied")
        if Grant.from_payload(found.envelope.payload).not_after <= now:
            raise ConsentRejected(f"the change's grant {grant_id} has ended: it can no longer "
                                  "be applied")

    async def _not_consented(self, store: ChangeStore, digest: str, now: float) -> None:
        """ConsentRejected if a consent to ``digest`` waits unused: one is enough."""
        for kept in await asyncio.to_thread(store.consents, digest):
            until = ChangeConsent.from_payload(kept.envelope.payload).not_after
            if kept.used_at is None and until > now:
                raise ConsentRejected(f"change {digest} is consented to already ({kept.consent_id}"
                                      f", until {_utc(until)}): the engineer may apply it")

    async def _pending(self, digest: str, now: float) -> StoredPreview:
        stored = await asyncio.to_thread(self._store().preview, digest)
        if stored is None:
            raise NotFound(f"no change {digest}")
        status = _status(stored, now)
        if status != "pending":
            raise ConsentRejected(f"change {digest} is {status}, not pending")
        return stored


def _utc(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _status(stored: StoredPreview, now: float) -> str:
    return "expired" if stored.status == "pending" and now >= stored.expires_at \
        else stored.status


def _peek_digest(payload: bytes) -> str:
    try:
        digest = json.loads(payload).get("change_digest")
    except (ValueError, AttributeError) as exc:
        raise BadInput("consent: not a change consent") from exc
    if not isinstance(digest, str):
        raise BadInput("consent: change_digest is missing")
    return digest


def _detail(stored: StoredPreview) -> dict[str, Any]:
    """What the customer reviews, by kind: rows, the unredacted diff, or the action."""
    if stored.kind == "config":
        return {"kind": "config", "file": stored.source, "changes": stored.plan["changes"],
                "diff": stored.plan["diff"]}
    if stored.kind == "service":
        return {"kind": "service", "name": stored.source, "action": stored.plan["action"],
                "current": stored.plan["current"], "expected": stored.plan["expected"],
                "needs_consent": stored.plan["needs_consent"]}
    from agent.data.ops import preview_rows  # SQLAlchemy only for an agent with data sources
    return {"kind": "data", "rows": preview_rows(stored), "counts": stored.images["counts"],
            "side_effects": stored.images["side_effects"]}


def _message(stored: StoredPreview, now: float) -> pb.PendingChange:
    detail = _detail(stored)
    return pb.PendingChange(
        digest=stored.digest, source=stored.source, status=_status(stored, now),
        case_id=stored.case_id, grant_id=stored.grant_id, engineer=stored.engineer,
        engineer_key_id=stored.engineer_key_id, created_at=int(stored.created_at),
        expires_at=int(stored.expires_at), undo_of=stored.undo_of or "",
        detail_json=json.dumps(detail, sort_keys=True), agent_id=stored.agent_id)
