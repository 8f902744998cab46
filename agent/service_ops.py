"""The service-control operations (scope ``service.control``) as the catalogue runs them.

- ``service.status`` (``name``): the allowlisted service's state, pid and since.
- ``service.preview`` (``name``, ``action``: start, stop, restart, reload): the current
  state, the state expected after the action, and the preview's digest; stored (kind
  ``service``) for the customer's review.
- ``service.apply`` (``digest``): runs a stored, pending preview and verifies the result;
  ``status: refused`` if the service moved since the preview (nothing was done),
  ``status: failed`` if it did not reach the expected state in time (with its state now).
  Stop and restart switch something off: they need a change consent to the digest,
  consumed before anything is done. Start and reload go through a preview too (so the
  action runs only from the state the engineer saw) but need no consent.

The preview's digest covers the engine's digest (service, action, state and main
process) and a random nonce: every preview is its own change, so a consent is never
carried over to a later preview from the same state, and a preview applied once is
never applied again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
from collections.abc import Callable
from typing import Any

from agent import servicectl as svc
from agent.catalogue import OperationSpec, Runner, in_context
from agent.change_consent import ChangeGate, read_digest
from agent.changes import PREVIEW_TTL, StoredPreview
from agent.context import OperationContext
from agent.diag.params import ParamReader, Params
from agent.errors import InvalidParams, OperationFailed

KIND = "service"
# A process's start time and the agent's clock are read differently (boot time plus ticks,
# the wall clock): a state change this much before the apply began still counts as after.
_CLOCK_SLACK = 1.0
_log = logging.getLogger("agent.servicectl")


class ServiceOperations:
    """The customer's ``[services]`` allowlist bound to the change gate and clock."""

    def __init__(self, config: svc.ServicesConfig, gate: ChangeGate,
                 clock: Callable[[], float], host: svc.Host | None = None) -> None:
        self._config = config
        self._gate = gate
        self._clock = clock
        self._host = host or svc.Host()

    def specs(self) -> tuple[OperationSpec, ...]:
        # An apply may wait for a stop, then a start, each up to its verification time.
        slowest = max((2 * (r.verify_timeout + r.stop_timeout + r.start_settle)
                       for r in self._config.allow), default=0.0)
        return (
            in_context("service.status", "service.control", False, self.prepare_status),
            in_context("service.preview", "service.control", False, self.prepare_preview),
            in_context("service.apply", "service.control", True, self.prepare_apply,
                       deadline=30.0 + slowest),
        )

    def prepare_status(self, raw: Params, _ctx: OperationContext) -> Runner:
        name = ParamReader("service.status", raw, ("name",)).text("name", max_length=64)
        return lambda: _engine(svc.status, self._config, name, self._host)

    def prepare_preview(self, raw: Params, ctx: OperationContext) -> Runner:
        reader = ParamReader("service.preview", raw, ("name", "action"))
        name = reader.text("name", max_length=64)
        action = reader.choice("action", "", ("start", "stop", "restart", "reload"))
        return lambda: self._preview(name, action, ctx)

    def prepare_apply(self, raw: Params, ctx: OperationContext) -> Runner:
        digest = read_digest(ParamReader("service.apply", raw, ("digest",)), raw)
        return lambda: self._apply(digest, ctx)

    async def _preview(self, name: str, action: str, ctx: OperationContext) -> dict[str, Any]:
        previewed: svc.ServicePreview = await _engine(svc.preview, self._config, name, action,
                                                      self._host)
        now = self._clock()
        plan = previewed.to_dict()
        stored = StoredPreview(
            digest=_preview_digest(previewed.digest, nonce := secrets.token_hex(16)),
            source=name, undo_of=None, plan={**plan, "nonce": nonce}, schema_fp="",
            images={}, agent_id=ctx.agent_id, case_id=ctx.case_id, grant_id=ctx.grant_id,
            session_id=ctx.session_id, engineer=ctx.engineer,
            engineer_key_id=ctx.engineer_key_id, created_at=now, expires_at=now + PREVIEW_TTL,
            kind=KIND)
        await self._gate.store.submit(self._gate.store.add_preview, stored)
        return outward(stored)

    async def _apply(self, digest: str, ctx: OperationContext) -> dict[str, Any]:
        stored = await self._gate.pending(digest, KIND)
        previewed = _service_preview(stored)
        if svc.needs_consent(previewed.action):  # from the action, not the stored flag
            await self._gate.consume(stored, ctx)
        store = self._gate.store
        await store.submit(store.journal_begin, digest, [], self._clock())
        try:
            record: dict[str, Any] = await _engine(svc.apply, self._config, previewed,
                                                   self._host)
        except (svc.StateChanged, svc.ActionFailed) as exc:
            await store.submit(store.journal_end, digest, "aborted", self._clock())
            return await self._not_applied(digest, previewed, exc)
        except Exception:
            await store.submit(store.journal_end, digest, "aborted", self._clock())
            raise
        await store.submit(store.journal_end, digest, "applied", self._clock(), record)
        _log.info("service action applied", extra={"fields": {
            "digest": digest, "service": previewed.name, "action": previewed.action}})
        return {**record, "digest": digest, "kind": KIND, "status": "applied"}

    def resolve_applying(self) -> dict[str, str]:
        """Close the service actions a crash cut off, by the service's state now.

        ``aborted`` when the service is exactly as previewed: state, main process and the
        time of its last change (a stopped supervised process keeps no time, but a start
        that ran leaves its pidfile). ``applied`` (its record marked ``recovered``) when the
        service is in the state the action asks for and its last change fell while the
        apply could still have been acting (a stop: cleanly stopped, not failed). Anything
        else (a reload leaves no trace; a service that crashed, was changed later by someone
        else, or is still changing) stays ``applying``, logged, for the customer to look at.
        Blocking: run at start, before any operation."""
        store, verdicts = self._gate.store, {}
        for digest in store.applying(KIND):
            verdict, record = self._verdict(digest)
            if verdict is not None:
                store.journal_end(digest, verdict, self._clock(), record)
                verdicts[digest] = verdict
            _log.warning("interrupted service action resolved", extra={"fields": {
                "digest": digest, "verdict": verdict or "undetermined"}})
        return verdicts

    def _verdict(self, digest: str) -> tuple[str | None, dict[str, Any] | None]:
        store = self._gate.store
        stored, began = store.preview(digest), store.journal_started_at(digest)
        if stored is None or began is None:
            return None, None
        try:
            previewed = _service_preview(stored)
            found = svc.status(self._config, previewed.name, self._host)
        except Exception as exc:  # undetermined: the agent still starts
            _log.warning("cannot read an interrupted service action's state", extra={
                "fields": {"digest": digest, "error": type(exc).__name__, "reason": str(exc)}})
            return None, None
        before = previewed.current
        now = svc.ServiceState(found["state"], found["pid"], found["since"], found["detail"])
        if previewed.action == "reload":
            return None, None
        if (now.identity(), now.since) == (before.identity(), before.since) \
                and (now.since is not None or now.state == svc.STOPPED):
            return "aborted", None
        if previewed.action == "stop":
            done = now.state == svc.STOPPED and (now.since is None or self._ours(now, began, previewed))
        else:
            done = svc.reached(previewed.action, before, now) and self._ours(now, began, previewed)
        if done:
            return "applied", {"name": previewed.name, "action": previewed.action,
                               "digest": previewed.digest, "before": before.to_dict(),
                               "after": now.to_dict(), "verified": True, "recovered": True}
        return None, None

    def _ours(self, now: svc.ServiceState, began: float, previewed: svc.ServicePreview) -> bool:
        """Whether the service's last change fell while the interrupted apply could still
        have been acting: from its start to the longest the action may take."""
        rule = self._config.rule(previewed.name)
        longest = 2 * (rule.verify_timeout + rule.stop_timeout + rule.start_settle)
        return now.since is not None and \
            began - _CLOCK_SLACK <= now.since <= began + longest + _CLOCK_SLACK

    async def _not_applied(self, digest: str, previewed: svc.ServicePreview,
                           exc: svc.ServiceError) -> dict[str, Any]:
        """The outcome of an action the service's state stopped or did not follow."""
        _log.warning("service action not applied", extra={"fields": {
            "digest": digest, "service": previewed.name, "action": previewed.action,
            "error": type(exc).__name__, "reason": str(exc)}})
        now: dict[str, Any] = await _engine(svc.status, self._config, previewed.name,
                                            self._host)
        status = "refused" if isinstance(exc, svc.StateChanged) else "failed"
        return {"digest": digest, "kind": KIND, "status": status, "name": previewed.name,
                "action": previewed.action, "reason": str(exc),
                "before": previewed.current.to_dict(), "now": now}


def outward(stored: StoredPreview) -> dict[str, Any]:
    """What the engineer (and the customer's review) sees of a stored service preview."""
    plan = stored.plan
    return {"digest": stored.digest, "kind": KIND, "name": plan["name"],
            "action": plan["action"], "current": plan["current"], "expected": plan["expected"],
            "needs_consent": svc.needs_consent(plan["action"]), "status": stored.status,
            "expires_at": int(stored.expires_at)}


def _preview_digest(service_digest: str, nonce: str) -> str:
    body = {"kind": "service.preview", "service_digest": service_digest, "nonce": nonce}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _service_preview(stored: StoredPreview) -> svc.ServicePreview:
    plan = stored.plan
    try:
        current = svc.ServiceState(**plan["current"])
        previewed = svc.ServicePreview(plan["name"], plan["action"], current, plan["expected"],
                                       svc.needs_consent(plan["action"]), plan["digest"])
    except (KeyError, TypeError, svc.ServiceError) as exc:
        raise OperationFailed("the stored preview is malformed") from exc
    if _preview_digest(previewed.digest, str(plan.get("nonce"))) != stored.digest:
        raise OperationFailed("the stored preview does not match its digest")
    return previewed


async def _engine(call: Callable[..., Any], *args: Any) -> Any:
    """Run an engine call in a thread. What cannot be asked (an unknown service, an action
    not allowed, reloading a stopped service) is invalid input, its message shown; a
    service that moved or did not follow is an apply's outcome, not an error."""
    try:
        return await asyncio.to_thread(call, *args)
    except (svc.StateChanged, svc.ActionFailed) as exc:
        if call is svc.apply:
            raise  # an apply reports these as its outcome
        raise InvalidParams(str(exc)) from exc
    except (svc.UnknownService, svc.ActionNotAllowed) as exc:
        raise InvalidParams(str(exc)) from exc
    except svc.ServiceError as exc:
        raise OperationFailed(str(exc)) from exc
