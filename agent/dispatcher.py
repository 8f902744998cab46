"""The one dispatcher: every operation, from any transport, passes through here.

For each operation envelope it looks up the grant, decides with
``permissions.evaluate`` on the agent's own clock, records the attempt durably, and
only then runs the operation as a task registered under its grant id, records the
result and signs a receipt. ``revoke`` cancels the tasks of a grant at once.

Durable writes run in worker threads and are always awaited to their end, even when the
caller is cancelled meanwhile (the cancellation is passed on afterwards): a write that
commits late can then never interleave with the next decision.

Raises (see :mod:`agent.errors`): BadInput for a malformed envelope, Refused (with the
audit reason) for a denial, LogUnavailable when the attempt cannot be recorded (and
then nothing ran), InvalidParams, OperationFailed, Cancelled; ``revoke`` raises
RevocationNotSaved when the revocation is in force but its durable write failed (it is
then retried in the background until it succeeds).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from cryptography.hazmat.primitives.asymmetric import ec

from agent.catalogue import CATALOGUE, OperationSpec
from agent.consent import Revoked, verify_revocation
from agent.errors import (
    BadInput,
    Cancelled,
    LogUnavailable,
    NotFound,
    OperationFailed,
    Refused,
    RevocationNotSaved,
    StateUnavailable,
)
from agent.log import Attempt, OperationLog, Recorded, Result
from agent.state import StateStore
from agent.wire import envelope_blob
from permissions import (
    RECEIPT,
    AgentTrust,
    Decision,
    Envelope,
    MalformedStatement,
    Reason,
    Receipt,
    Revocation,
    digest,
    evaluate,
    peek,
    sign,
)
from rmaint.envelopes import from_wire
from rmaint.v1 import common_pb2

UNKNOWN_GRANT = "grant-unknown"
MALFORMED = str(Reason.MALFORMED)
SAVE_RETRY_FIRST = 0.1  # seconds before retrying an unsaved revocation; doubles each time
SAVE_RETRY_MAX = 2.0
_log = logging.getLogger("agent.dispatcher")
T = TypeVar("T")


class TrustSource(Protocol):
    def current(self) -> AgentTrust: ...


@dataclass(frozen=True)
class Executed:
    """A completed operation: redacted JSON output and the agent's signed receipt."""

    result_json: bytes
    receipt: Envelope
    log_index: int


@dataclass(frozen=True)
class _Unsaved:
    """A revocation in force in memory whose durable write ``task`` keeps retrying."""

    envelope: Envelope
    revocation: Revocation
    at: float
    task: asyncio.Task[None]


class Dispatcher:
    def __init__(self, *, agent_id: str, signing_key: ec.EllipticCurvePrivateKey,
                 trust: TrustSource, state: StateStore, log: OperationLog,
                 catalogue: Mapping[str, OperationSpec] = CATALOGUE,
                 clock: Callable[[], float] = time.time) -> None:
        self._agent_id = agent_id
        self._key = signing_key
        self._trust = trust
        self._state = state
        self._log = log
        self._catalogue = catalogue
        self._clock = clock
        self._decide_lock = asyncio.Lock()
        self._revoked: set[str] = set(state.revoked_ids())
        self._tasks: defaultdict[str, set[asyncio.Task[dict[str, Any]]]] = defaultdict(set)
        self._unsaved: dict[str, _Unsaved] = {}  # revocations in force, not yet stored

    def in_flight(self) -> int:
        """Operations running now."""
        return sum(len(tasks) for tasks in self._tasks.values())

    def unsaved_revocations(self) -> set[str]:
        """Grants revoked in memory whose revocation is not stored yet."""
        return set(self._unsaved)

    async def execute(self, message: common_pb2.Envelope) -> Executed:
        """Decide, record, run, record, sign; see the module docstring for the errors."""
        # One decision at a time: the seq read, the decision and the record of it must
        # not interleave with another operation. The lock is held until the record has
        # committed or failed, even if the caller is cancelled meanwhile.
        async with self._decide_lock:
            attempt, decision = await self._decide(message)
            write = _in_thread(self._log.record_decision, attempt)
            try:
                recorded = await _to_the_end(write)
            except asyncio.CancelledError:
                await self._abandoned(write)
                raise
        attempt, index = recorded.attempt, recorded.index
        _log.info("operation %s", attempt.outcome, extra={"fields": _fields(attempt, index)})
        if attempt.reason == MALFORMED:
            raise BadInput(f"malformed operation envelope: {attempt.detail}")
        if decision is None or attempt.outcome != "allowed":
            raise Refused(attempt.reason, attempt.detail)
        return await self._run(index, decision, attempt)

    async def _abandoned(self, write: asyncio.Future[Recorded]) -> None:
        """The caller went away while its attempt was being recorded: close it in the log."""
        if write.exception() is None and write.result().attempt.outcome == "allowed":
            try:
                await self._result(write.result().index, "cancelled",
                                   "caller cancelled before start")
            except LogUnavailable:  # nothing ran; the attempt stays without its result
                _log.exception("cannot record the result of an abandoned attempt")

    async def revoke(self, envelope: Envelope) -> Revoked:
        """Verify a revocation, stop the grant's operations now, then store it durably.

        If it cannot be stored, it stays in force in memory, is retried in the background
        until stored, and RevocationNotSaved tells the customer so.
        """
        revocation = verify_revocation(envelope, self._trust.current())
        grant_id = revocation.grant_id
        if await asyncio.to_thread(self._state.get_grant, grant_id) is None:
            raise NotFound(f"unknown grant {grant_id}")
        self._revoked.add(grant_id)  # later decisions and starts see it from here on
        tasks = self._tasks.pop(grant_id, set())
        for task in tasks:
            task.cancel()
        _log.info("grant revoked", extra={"fields": {"grant_id": grant_id,
                                                     "cancelled": len(tasks)}})
        now = self._clock()
        write = _in_thread(self._state.store_revocation, envelope, revocation, now)
        try:
            stored = await _to_the_end(write)
        except asyncio.CancelledError:
            if write.exception() is not None:
                self._save_later(envelope, revocation, now)
            raise
        except StateUnavailable as exc:
            self._save_later(envelope, revocation, now)
            raise RevocationNotSaved(
                f"the revocation of grant {grant_id} is in force now but not yet saved "
                f"({exc}); the agent keeps trying to save it: keep the agent running until "
                f"'rmagent grants --all' shows {grant_id} revoked, a restart before that "
                "would forget it") from exc
        return Revoked(revocation, len(tasks), stored)

    def _save_later(self, envelope: Envelope, revocation: Revocation, at: float) -> None:
        grant_id = revocation.grant_id
        _log.error("revocation in force but not saved; retrying in the background",
                   extra={"fields": {"grant_id": grant_id}})
        if grant_id not in self._unsaved:
            task = asyncio.create_task(self._keep_saving(envelope, revocation, at),
                                       name=f"save-revocation-{grant_id}")
            self._unsaved[grant_id] = _Unsaved(envelope, revocation, at, task)

    async def _keep_saving(self, envelope: Envelope, revocation: Revocation, at: float) -> None:
        delay, attempts = SAVE_RETRY_FIRST, 0
        while True:
            await asyncio.sleep(delay)
            attempts += 1
            try:
                await _to_the_end(_in_thread(self._state.store_revocation, envelope,
                                             revocation, at))
            except Exception as exc:  # whatever failed, keep trying
                _log.warning("revocation still not saved", extra={"fields": {
                    "grant_id": revocation.grant_id, "attempts": attempts, "error": str(exc)}})
                delay = min(delay * 2, SAVE_RETRY_MAX)
                continue
            self._unsaved.pop(revocation.grant_id, None)
            _log.info("revocation saved", extra={"fields": {
                "grant_id": revocation.grant_id, "attempts": attempts}})
            return

    async def close(self) -> None:
        """Stop the background retries; try each unsaved revocation once more, log losses."""
        unsaved, self._unsaved = self._unsaved, {}
        for item in unsaved.values():
            item.task.cancel()
        await asyncio.gather(*(item.task for item in unsaved.values()), return_exceptions=True)
        for grant_id, item in unsaved.items():
            try:
                await _to_the_end(_in_thread(self._state.store_revocation, item.envelope,
                                             item.revocation, item.at))
            except StateUnavailable as exc:
                _log.error("revocation lost at shutdown: it could not be saved; the customer "
                           "must revoke the grant again", extra={"fields": {
                               "grant_id": grant_id, "error": str(exc)}})

    async def _decide(self, message: common_pb2.Envelope) -> tuple[Attempt, Decision | None]:
        now = self._clock()
        try:
            envelope = from_wire(message)
            grant_id, session_id = (peek(envelope.payload, f) for f in ("grant_id", "session_id"))
        except MalformedStatement as exc:
            return _malformed(message, str(exc), now), None
        stored = (await asyncio.to_thread(self._state.get_grant, grant_id)
                  if isinstance(grant_id, str) else None)
        if stored is None:
            return _attempt(envelope, now, "denied", UNKNOWN_GRANT, str(grant_id)[:200]), None
        # Keyed by grant and session: the verified operation names this grant (checked by
        # evaluate), so another grant's session with the same id cannot interfere.
        last_seq = (await asyncio.to_thread(self._log.last_seq, grant_id, session_id)
                    if isinstance(session_id, str) else None)
        decision = evaluate(
            grant_envelope=stored.envelope, operation_envelope=envelope,
            trust=self._trust.current(), scope_of=self._scope_of, last_seq=last_seq,
            revoked=self._revoked, now=now)
        outcome = "allowed" if decision.allowed else "denied"
        reason = str(decision.reason) if decision.reason is not None else ""
        return _attempt(envelope, now, outcome, reason, decision.detail, decision), decision

    def _forget(self, grant_id: str, task: asyncio.Task[dict[str, Any]]) -> None:
        tasks = self._tasks.get(grant_id)
        if tasks is not None:
            tasks.discard(task)
            if not tasks:
                del self._tasks[grant_id]

    def _scope_of(self, name: str) -> str | None:
        spec = self._catalogue.get(name)
        return spec.scope if spec is not None else None

    async def _run(self, index: int, decision: Decision, attempt: Attempt) -> Executed:
        assert decision.operation is not None and decision.grant is not None
        op, grant_id = decision.operation, decision.grant.grant_id
        spec = self._catalogue[op.operation]
        try:
            runner = spec.prepare(op.params)
        except BadInput as exc:
            await self._result(index, "invalid", str(exc))
            raise
        if grant_id in self._revoked:  # revoked while this attempt was being recorded
            await self._result(index, "cancelled", "grant revoked before start")
            raise Cancelled("grant revoked before start")
        # Created and registered with no await in between, so revoke() always sees it.
        task = asyncio.create_task(asyncio.wait_for(runner(), spec.deadline))
        self._tasks[grant_id].add(task)
        started = time.monotonic()
        try:
            result = await self._outcome(task, index, spec)
        finally:
            self._forget(grant_id, task)
        return await self._finish(index, attempt, result, (time.monotonic() - started) * 1000)

    async def _outcome(self, task: asyncio.Task[dict[str, Any]], index: int,
                       spec: OperationSpec) -> bytes:
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:  # the caller went away: stop the work too
            task.cancel()
            await self._result(index, "cancelled", "caller cancelled")
            raise
        if task.cancelled():
            await self._result(index, "cancelled", "grant revoked while running")
            raise Cancelled()
        error = task.exception()
        if error is not None:
            detail = "deadline exceeded" if isinstance(error, TimeoutError) else repr(error)
            _log.error("operation failed", exc_info=error, extra={"fields": {"index": index}})
            await self._result(index, "error", detail)
            raise OperationFailed(f"operation failed: {detail}"
                                  if isinstance(error, TimeoutError) else "operation failed")
        try:
            output = json.dumps(task.result(), sort_keys=True, separators=(",", ":"),
                                ensure_ascii=False, allow_nan=False).encode()
        except ValueError as exc:
            await self._result(index, "error", f"output is not JSON: {exc}")
            raise OperationFailed("operation failed: output is not JSON") from exc
        if len(output) > spec.output_limit:
            await self._result(index, "error", f"output of {len(output)} bytes over the limit")
            raise OperationFailed("operation failed: output over its size limit")
        return output

    async def _finish(self, index: int, attempt: Attempt, output: bytes,
                      duration_ms: float) -> Executed:
        result_digest = "sha256:" + hashlib.sha256(output).hexdigest()
        # Fail closed here too: output whose result cannot be recorded is withheld.
        await self._result(index, "ok", "", result_digest, duration_ms)
        receipt = Receipt(
            agent_id=self._agent_id, session_id=attempt.session_id or "", seq=attempt.seq or 0,
            operation=attempt.operation or "", operation_digest=attempt.operation_digest,
            outcome="ok", result_digest=result_digest, at=int(self._clock()), log_index=index)
        return Executed(output, sign(RECEIPT, receipt.to_payload(), self._key), index)

    async def _result(self, index: int, outcome: str, detail: str,
                      result_digest: str | None = None, duration_ms: float | None = None) -> None:
        result = Result(attempt_id=index, at=self._clock(), outcome=outcome, detail=detail,
                        result_digest=result_digest, duration_ms=duration_ms)
        await _to_the_end(_in_thread(self._log.record_result, result))
        _log.info("operation %s", outcome, extra={"fields": {"index": index, "detail": detail}})


def _in_thread(call: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """``call(*args)`` started now in a worker thread."""
    return asyncio.ensure_future(asyncio.to_thread(call, *args))


async def _to_the_end(write: asyncio.Future[T]) -> T:
    """The outcome of ``write``, awaited until it is done even if cancelled meanwhile.

    A thread cannot be stopped: abandoning its future would let the write commit later,
    unseen. So a cancellation is held (the future is shielded) until ``write`` is done,
    then passed on; ``write`` is then done and its outcome readable by the caller.
    """
    cancelled = False
    while not write.done():
        try:
            await asyncio.wait({write})  # never cancels ``write`` itself
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return write.result()


def _attempt(envelope: Envelope, now: float, outcome: str, reason: str, detail: str,
             decision: Decision | None = None) -> Attempt:
    op = decision.operation if decision is not None else None
    grant = decision.grant if decision is not None else None
    return Attempt(
        at=now, outcome=outcome, reason=reason, detail=detail,
        operation_digest=digest(envelope), envelope=envelope_blob(envelope),
        session_id=op.session_id if op else None, seq=op.seq if op else None,
        grant_id=grant.grant_id if grant else None, case_id=op.case_id if op else None,
        engineer=grant.engineer if grant else None, operation=op.operation if op else None,
        params_json=json.dumps(op.params, sort_keys=True) if op else None)


def _malformed(message: common_pb2.Envelope, detail: str, now: float) -> Attempt:
    raw = message.SerializeToString(deterministic=True)
    return Attempt(at=now, outcome="denied", reason=MALFORMED, detail=detail,
                   operation_digest="sha256:" + hashlib.sha256(raw).hexdigest(), envelope=raw)


def _fields(attempt: Attempt, index: int) -> dict[str, Any]:
    return {"index": index, "reason": attempt.reason, "detail": attempt.detail,
            "session_id": attempt.session_id, "seq": attempt.seq, "grant_id": attempt.grant_id,
            "operation": attempt.operation, "engineer": attempt.engineer}
