"""The one gate every previewed change passes before it is made: pending, then consented.

A change (rows of a data source, a parameter file, a service action) is applied only for
a stored preview of its kind that is pending and unexpired, and only after a change
consent for exactly its digest has been consumed: verified under the pinned approver
keys of the moment, inside its window on the agent's clock, naming this agent, case,
grant and engineer key, and unused. Consumption is a durable conditional update, so a
consent is used at most once even under concurrency, and it happens before anything
is touched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from agent.changes import ChangeStore, StoredPreview
from agent.context import OperationContext
from agent.data.errors import ChangeNotConsented, ChangeNotFound
from agent.diag.params import ParamReader, Params
from permissions import AgentTrust, ChangeConsentInvalid, ChangeContext, verify_change_consent

_log = logging.getLogger("agent.changes")


def read_digest(reader: ParamReader, raw: Params) -> str:
    """The ``digest`` parameter, which must be ``sha256:<64 lowercase hex>``."""
    digest = raw.get("digest")
    if not isinstance(digest, str) or len(digest) != 71 or not digest.startswith("sha256:") \
            or not all(c in "0123456789abcdef" for c in digest[7:]):
        reader.fail("digest must be sha256:<64 lowercase hex>")
    return digest


class TrustSource(Protocol):
    def current(self) -> AgentTrust: ...


class ChangeGate:
    """Pending previews and their consents in ``store``, judged by ``trust`` at ``clock``."""

    def __init__(self, store: ChangeStore, trust: TrustSource,
                 clock: Callable[[], float]) -> None:
        self.store = store
        self._trust = trust
        self._clock = clock

    async def pending(self, digest: str, kind: str) -> StoredPreview:
        """The stored preview of ``kind`` with ``digest``, pending and unexpired."""
        stored = await self.store.submit(self.store.preview, digest)
        if stored is None or stored.kind != kind:
            raise ChangeNotFound(f"no preview {digest}")
        if stored.status != "pending":
            raise ChangeNotFound(f"change {digest} is {stored.status}, not pending")
        if self._clock() >= stored.expires_at:
            raise ChangeNotFound(f"preview {digest} has expired: preview it again")
        return stored

    async def applied(self, digest: str, kind: str) -> StoredPreview:
        """The stored change of ``kind`` with ``digest`` that was applied."""
        stored = await self.store.submit(self.store.preview, digest)
        if stored is None or stored.kind != kind or stored.status != "applied":
            raise ChangeNotFound(f"no applied change {digest}")
        return stored

    async def consume(self, stored: StoredPreview, ctx: OperationContext) -> None:
        """Use one valid consent to ``stored``, durably; ChangeNotConsented if none is."""
        context = ChangeContext(change_digest=stored.digest, agent_id=ctx.agent_id,
                                case_id=ctx.case_id, grant_id=ctx.grant_id,
                                engineer_key_id=ctx.engineer_key_id)
        keys = self._trust.current().approver_keys
        reason = "no-consent"
        for consent in await self.store.submit(self.store.consents, stored.digest):
            if consent.used_at is not None:
                reason = "consent-used"
                continue
            try:
                verify_change_consent(consent.envelope, keys, context, now=int(self._clock()))
            except ChangeConsentInvalid as exc:
                reason = exc.reason
                continue
            if await self.store.submit(self.store.consume, consent.consent_id, self._clock()):
                _log.info("change consent consumed", extra={"fields": {
                    "digest": stored.digest, "kind": stored.kind,
                    "consent_id": consent.consent_id}})
                return
            reason = "consent-used"
        raise ChangeNotConsented(reason)
