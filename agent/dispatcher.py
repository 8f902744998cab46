"""The one dispatcher: every operation, from any transport, passes through here.

For each operation envelope it looks up the grant, decides with
``permissions.evaluate`` on the agent's own clock, records the attempt durably, and
only then runs the operation as a task registered under its grant id, records the
result and signs a receipt. ``revoke`` cancels the tasks of a grant at once.

Durable writes run in the database's own thread (one per database, see
:mod:`agent.sqlite`) and are always awaited to their end, even when the caller is
cancelled meanwhile (the cancellation is passed on afterwards): a write that commits
late can then never interleave with the next decision. An operation takes two trips to
the log's thread: its attempt, committed before it starts, and its result, committed
before its output and receipt are handed out. Deciding needs no trip once the grant
and the session have been seen: grants are kept once read (a stored grant never changes;
revocations are held here), the grant's approver signature is verified once per exact
envelope and pinned key set (:class:`agent.trust.VerifiedGrants`), and the log
remembers each session's last sequence number (its write transaction still has the last
word). Everything else is checked for every operation by the trust kernel's rules, on
the agent's clock: the engineer's signature, agent, revocation, validity window, case,
scope, sequence number and issue time.

Streaming operations (``spec.streams``) run through :meth:`Dispatcher.execute_stream`
with the same steps: their parts are handed out as they are made (each at most
``PART_LIMIT`` bytes, all together at most the operation's ``output_limit``), and the
result the receipt signs is their summary with the count, size and SHA-256 of the parts.
Each kind of operation through the other call is refused as invalid parameters.

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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from cryptography.hazmat.primitives.asymmetric import ec

from agent.catalogue import CATALOGUE, PART_LIMIT, Emit, OperationSpec
from agent.consent import Revoked, verify_revocation
from agent.context import OperationContext
from agent.errors import (
    BadInput,
    Cancelled,
    InvalidParams,
    LogUnavailable,
    NotFound,
    OperationFailed,
    Refused,
    RevocationNotSaved,
    StateUnavailable,
)
from agent.log import Attempt, OperationLog, Recorded, Result
from agent.sqlite import to_the_end
from agent.state import StateStore, StoredGrant
from agent.trust import VerifiedGrants
from agent.wire import envelope_blob
from permissions import (
    RECEIPT,
    AgentTrust,
    Decision,
    Envelope,
    Grant,
    MalformedStatement,
    Reason,
    Receipt,
    Revocation,
    digest,
    evaluate,
    evaluate_verified,
    peek,
    sign,
)
from permissions.locks import Lock, Subject, covering
from rmaint.envelopes import from_wire
from rmaint.v1 import common_pb2

UNKNOWN_GRANT = "grant-unknown"
LOCKED = "locked"
LOCKED_RUNNING = "locked while running"
GRANT_EXPIRED = "grant expired while running"
MALFORMED = str(Reason.MALFORMED)
SAVE_RETRY_FIRST = 0.1  # seconds before retrying an unsaved revocation; doubles each time
SAVE_RETRY_MAX = 2.0
GRANTS_KEPT = 4096  # grants kept in memory once read; then start over
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
        self._grants: dict[str, StoredGrant] = {}  # read from the state, never changed there
        self._verified = VerifiedGrants()
        self._tasks: defaultdict[str, set[asyncio.Task[dict[str, Any]]]] = defaultdict(set)
        self._unsaved: dict[str, _Unsaved] = {}  # revocations in force, not yet stored
        self._revoke_hooks: list[Callable[[str], object]] = []
        self._locks: tuple[Lock, ...] = ()  # the controller's locks (agent.locks keeps them)

    def in_flight(self) -> int:
        """Operations running now."""
        return sum(len(tasks) for tasks in self._tasks.values())

    def on_revoke(self, hook: Callable[[str], object]) -> None:
        """Call ``hook(grant_id)`` on each revocation, as its operations are cancelled
        (interactive shells end through it)."""
        self._revoke_hooks.append(hook)

    def apply_locks(self, locks: Sequence[Lock]) -> int:
        """Hold ``locks`` from now on: decisions refuse what they cover, and operations and
        shells under a covered grant end at once (through the revocation hooks; the grant
        itself is not revoked). Locks only restrict. Returns how many operations it
        cancelled."""
        self._locks = tuple(locks)
        now, cancelled = self._clock(), 0
        for grant_id, stored in list(self._grants.items()):
            if self._lock_on(stored.grant, now) is None:
                continue
            tasks = self._tasks.pop(grant_id, set())
            for task in tasks:
                task.cancel(LOCKED_RUNNING)  # the log's detail (see _cancel_detail)
            cancelled += len(tasks)
            for hook in self._revoke_hooks:
                hook(grant_id)
        return cancelled

    def _lock_on(self, grant: Grant, now: float) -> Lock | None:
        """The lock in force that covers ``grant`` (its agent, id, case or engineer key)."""
        if not self._locks:
            return None
        return covering(self._locks, Subject(self._agent_id, grant.grant_id, grant.case_id,
                                             grant.engineer_key_id), now)

    def is_revoked(self, grant_id: str) -> bool:
        """Whether a revocation of ``grant_id`` is in force (stored or not yet), or a lock
        covers it now (a shell ticket issued before the lock is then refused too)."""
        if grant_id in self._revoked:
            return True
        stored = self._grants.get(grant_id)
        return stored is not None and self._lock_on(stored.grant, self._clock()) is not None

    def unsaved_revocations(self) -> set[str]:
        """Grants revoked in memory whose revocation is not stored yet."""
        return set(self._unsaved)

    async def execute(self, message: common_pb2.Envelope) -> Executed:
        """Decide, record, run, record, sign; see the module docstring for the errors."""
        return await self._run(*await self._admit(message), None)

    async def execute_stream(self, message: common_pb2.Envelope, send: Emit) -> Executed:
        """As :meth:`execute`, for a streaming operation: each part of its output goes to
        ``send`` as it is made; the result is its summary with ``"stream"`` (count, bytes
        and SHA-256 of the parts in order), which the receipt signs. ``send`` is awaited
        in the operation's task, so a revocation cancels a part being sent too."""
        return await self._run(*await self._admit(message), send)

    async def _admit(self, message: common_pb2.Envelope) -> tuple[int, Decision, Attempt]:
        """Decide and record the attempt; raise unless it is allowed."""
        # One decision at a time: the seq read, the decision and the record of it must
        # not interleave with another operation. The lock is held until the record has
        # committed or failed, even if the caller is cancelled meanwhile.
        async with self._decide_lock:
            attempt, decision = await self._decide(message)
            write = self._log.submit(self._log.record_decision, attempt)
            try:
                recorded = await to_the_end(write)
            except asyncio.CancelledError:
                await self._abandoned(write)
                raise
        attempt, index = recorded.attempt, recorded.index
        if attempt.outcome != "allowed":
            _log.info("operation %s", attempt.outcome, extra={"fields": _fields(attempt, index)})
        elif _log.isEnabledFor(logging.DEBUG):  # its result is logged at INFO with these fields
            _log.debug("operation allowed", extra={"fields": _fields(attempt, index)})
        if attempt.reason == MALFORMED:
            raise BadInput(f"malformed operation envelope: {attempt.detail}")
        if decision is None or attempt.outcome != "allowed":
            raise Refused(attempt.reason, attempt.detail)
        return index, decision, attempt

    async def _abandoned(self, write: asyncio.Future[Recorded]) -> None:
        """The caller went away while its attempt was being recorded: close it in the log."""
        if write.exception() is None and write.result().attempt.outcome == "allowed":
            try:
                recorded = write.result()
                await self._result(recorded.index, recorded.attempt, "cancelled",
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
        if await self._stored_grant(grant_id) is None:
            raise NotFound(f"unknown grant {grant_id}")
        self._revoked.add(grant_id)  # later decisions and starts see it from here on
        tasks = self._tasks.pop(grant_id, set())
        for task in tasks:
            task.cancel()
        for hook in self._revoke_hooks:
            hook(grant_id)
        _log.info("grant revoked", extra={"fields": {"grant_id": grant_id,
                                                     "cancelled": len(tasks)}})
        now = self._clock()
        write = self._state.submit(self._state.store_revocation, envelope, revocation, now)
        try:
            stored = await to_the_end(write)
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
                await to_the_end(self._state.submit(self._state.store_revocation, envelope,
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
                await to_the_end(self._state.submit(self._state.store_revocation,
                                                    item.envelope, item.revocation, item.at))
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
        stored = await self._stored_grant(grant_id) if isinstance(grant_id, str) else None
        if stored is None:
            return _attempt(envelope, now, "denied", UNKNOWN_GRANT, str(grant_id)[:200]), None
        # Keyed by grant and session: the verified operation names this grant (checked by
        # evaluate), so another grant's session with the same id cannot interfere.
        last_seq = None
        if isinstance(session_id, str):
            known, last_seq = self._log.known_last_seq(grant_id, session_id)
            if not known:
                last_seq = await self._log.submit(self._log.last_seq, grant_id, session_id)
        decision = self._evaluate(stored.envelope, envelope, last_seq, now)
        lock = self._lock_on(decision.grant, now) \
            if decision.allowed and decision.grant is not None else None
        if lock is not None:
            return _attempt(envelope, now, "denied", LOCKED,
                            f"{lock.target} locked ({lock.lock_id})", decision), None
        outcome = "allowed" if decision.allowed else "denied"
        reason = str(decision.reason) if decision.reason is not None else ""
        return _attempt(envelope, now, outcome, reason, decision.detail, decision), decision

    async def _stored_grant(self, grant_id: str) -> StoredGrant | None:
        """The stored grant ``grant_id``, read once: a stored grant never changes.

        Its ``revoked_at`` is as first read; revocations are decided from ``_revoked``.
        """
        stored = self._grants.get(grant_id)
        if stored is None:
            stored = await self._state.submit(self._state.get_grant, grant_id)
            if stored is not None:
                if len(self._grants) >= GRANTS_KEPT:
                    self._grants.clear()
                self._grants[grant_id] = stored
        return stored

    def _evaluate(self, grant_envelope: Envelope, operation_envelope: Envelope,
                  last_seq: int | None, now: float) -> Decision:
        """``permissions.evaluate``, with the grant's approver signature verified once.

        The first time a grant envelope is seen under the pinned keys of the moment, the
        kernel decides from scratch; what it verified is kept. After that, the same steps
        as ``evaluate`` follow the kept grant: the engineer's signature over this
        operation, then the kernel's checks of agent, revocation, validity window, case,
        scope, sequence number and issue time, on the agent's clock. Both paths are the
        kernel's (``permissions.evaluate_verified`` is what ``evaluate`` runs once the grant
        verified), so they cannot drift apart.
        """
        trust = self._trust.current()
        verified = self._verified.get(grant_envelope, trust)
        if verified is None:
            decision = evaluate(
                grant_envelope=grant_envelope, operation_envelope=operation_envelope,
                trust=trust, scope_of=self._scope_of, last_seq=last_seq,
                revoked=self._revoked, now=now)
            if decision.grant is not None:  # set only once the approver signature verified
                self._verified.add(grant_envelope, trust, decision.grant)
            return decision
        grant, engineer_key = verified
        return evaluate_verified(grant=grant, engineer_key=engineer_key,
                                 operation_envelope=operation_envelope, agent_id=trust.agent_id,
                                 scope_of=self._scope_of, last_seq=last_seq,
                                 revoked=self._revoked, now=now)

    def _forget(self, grant_id: str, task: asyncio.Task[dict[str, Any]]) -> None:
        tasks = self._tasks.get(grant_id)
        if tasks is not None:
            tasks.discard(task)
            if not tasks:
                del self._tasks[grant_id]

    def _scope_of(self, name: str) -> str | None:
        spec = self._catalogue.get(name)
        return spec.scope if spec is not None else None

    async def _run(self, index: int, decision: Decision, attempt: Attempt,
                   send: Emit | None) -> Executed:
        assert decision.operation is not None and decision.grant is not None
        op, grant_id = decision.operation, decision.grant.grant_id
        spec = self._catalogue[op.operation]
        context = OperationContext(
            agent_id=self._agent_id, grant_id=grant_id, case_id=op.case_id,
            session_id=op.session_id, seq=op.seq, engineer=decision.grant.engineer,
            engineer_key_id=decision.grant.engineer_key_id, scopes=tuple(decision.grant.scopes))
        grant = decision.grant
        try:
            runner = _prepare(spec, op.params, context, send,
                              lambda: self._clock() >= grant.not_after)
        except BadInput as exc:
            await self._result(index, attempt, "invalid", str(exc))
            raise
        except Exception as exc:  # a defect in reading the parameters: the attempt still ends
            _log.error("operation failed", exc_info=exc, extra={"fields": {"index": index}})
            await self._result(index, attempt, "error", f"preparing failed: {exc!r}"[:500])
            raise OperationFailed("operation failed") from exc
        if grant_id in self._revoked:  # revoked while this attempt was being recorded
            await self._result(index, attempt, "cancelled", "grant revoked before start")
            raise Cancelled("grant revoked before start")
        if self._lock_on(decision.grant, self._clock()) is not None:  # locked meanwhile
            await self._result(index, attempt, "cancelled", "locked before start")
            raise Cancelled("locked before start")
        # Created and registered with no await in between, so revoke() always sees it.
        task = asyncio.create_task(_bounded(runner, spec.deadline))
        self._tasks[grant_id].add(task)
        # No operation outlives its grant: at not_after (the agent's clock) it is cancelled
        # as a revocation would cancel it; a stream also checks the clock at each part.
        expiry = asyncio.get_running_loop().call_later(
            max(0.0, grant.not_after - self._clock()), task.cancel, GRANT_EXPIRED)
        started = time.monotonic()
        try:
            result = await self._outcome(task, index, attempt, spec)
        finally:
            expiry.cancel()
            self._forget(grant_id, task)
        return await self._finish(index, attempt, result, (time.monotonic() - started) * 1000)

    async def _outcome(self, task: asyncio.Task[dict[str, Any]], index: int, attempt: Attempt,
                       spec: OperationSpec) -> bytes:
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:  # the caller went away: stop the work too
            task.cancel()
            await self._result(index, attempt, "cancelled", "caller cancelled")
            raise
        if task.cancelled():
            detail = _cancel_detail(task)
            await self._result(index, attempt, "cancelled", detail)
            raise Cancelled(detail)
        error = task.exception()
        if isinstance(error, BadInput | Refused | OperationFailed):
            # Raised on purpose with a message fit for the caller (a refusal shows only
            # "permission denied"); the log keeps the detail.
            outcome = "denied" if isinstance(error, Refused) else (
                "invalid" if isinstance(error, BadInput) else "error")
            await self._result(index, attempt, outcome, str(error))
            raise error
        if error is not None:
            detail = "deadline exceeded" if isinstance(error, TimeoutError) else repr(error)
            _log.error("operation failed", exc_info=error, extra={"fields": {"index": index}})
            await self._result(index, attempt, "error", detail)
            raise OperationFailed(f"operation failed: {detail}"
                                  if isinstance(error, TimeoutError) else "operation failed")
        try:
            output = json.dumps(task.result(), sort_keys=True, separators=(",", ":"),
                                ensure_ascii=False, allow_nan=False).encode()
        except ValueError as exc:
            await self._result(index, attempt, "error", f"output is not JSON: {exc}")
            raise OperationFailed("operation failed: output is not JSON") from exc
        if len(output) > spec.output_limit:
            await self._result(index, attempt, "error",
                               f"output of {len(output)} bytes over the limit")
            raise OperationFailed("operation failed: output over its size limit")
        return output

    async def _finish(self, index: int, attempt: Attempt, output: bytes,
                      duration_ms: float) -> Executed:
        result_digest = "sha256:" + hashlib.sha256(output).hexdigest()
        now = self._clock()
        write = self._log.submit(self._log.record_result, Result(
            attempt_id=index, at=now, outcome="ok", result_digest=result_digest,
            duration_ms=duration_ms))
        # Signed while the result commits; handed out only once it has (fail closed:
        # output whose result cannot be recorded is withheld, its receipt dropped).
        receipt = Receipt(
            agent_id=self._agent_id, session_id=attempt.session_id or "", seq=attempt.seq or 0,
            operation=attempt.operation or "", operation_digest=attempt.operation_digest,
            outcome="ok", result_digest=result_digest, at=int(now), log_index=index)
        try:
            signed = sign(RECEIPT, receipt.to_payload(), self._key)
        finally:
            await to_the_end(write)
        _log.info("operation ok", extra={"fields": _fields(attempt, index, "", duration_ms)})
        return Executed(output, signed, index)

    async def _result(self, index: int, attempt: Attempt, outcome: str, detail: str) -> None:
        result = Result(attempt_id=index, at=self._clock(), outcome=outcome, detail=detail)
        await to_the_end(self._log.submit(self._log.record_result, result))
        _log.info("operation %s", outcome, extra={"fields": _fields(attempt, index, detail)})


def _prepare(spec: OperationSpec, params: Mapping[str, Any], context: OperationContext,
             send: Emit | None, expired: Callable[[], bool]
             ) -> Callable[[], Awaitable[dict[str, Any]]]:
    """What runs the operation: its runner, or for a streaming one (``send`` given) its
    stream runner counting and hashing the parts, ended once ``expired()`` (its grant's
    end on the agent's clock); InvalidParams for the wrong call."""
    if spec.streams != (send is not None):
        how = "ExecuteStream" if spec.streams else "Execute"
        raise InvalidParams(f"{spec.name} {'streams' if spec.streams else 'does not stream'} "
                            f"its output: run it with {how}")
    if send is None:
        return spec.runner(params, context)
    assert spec.prepare_stream is not None
    stream = spec.prepare_stream(params, context)
    parts = _Parts(send, spec.output_limit, expired)

    async def run() -> dict[str, Any]:
        summary = await stream(parts.emit)
        return {**summary, "stream": parts.summary()}
    return run


class _Parts:
    """The parts of one streaming operation: checked, counted, hashed, passed on."""

    def __init__(self, send: Emit, limit: int, expired: Callable[[], bool]) -> None:
        self._send = send
        self._limit = limit
        self._expired = expired
        self._hash = hashlib.sha256()
        self.count = 0
        self.size = 0

    async def emit(self, part: bytes) -> None:
        if not isinstance(part, bytes | bytearray) or len(part) > PART_LIMIT:
            raise OperationFailed("operation failed: a part of its output is over "
                                  f"{PART_LIMIT} bytes or not bytes")
        if self.size + len(part) > self._limit:
            raise OperationFailed("operation failed: output over its size limit")
        if self._expired():  # its grant ended: no part leaves after not_after
            raise asyncio.CancelledError(GRANT_EXPIRED)
        self.count += 1
        self.size += len(part)
        self._hash.update(part)
        await self._send(bytes(part))

    def summary(self) -> dict[str, Any]:
        return {"parts": self.count, "bytes": self.size, "sha256": self._hash.hexdigest()}


def _cancel_detail(task: asyncio.Task[Any]) -> str:
    """Why a cancelled operation ended: a lock (see apply_locks), its grant's end, or its
    grant's revocation."""
    try:
        task.result()
    except asyncio.CancelledError as exc:
        if exc.args and exc.args[0] in (LOCKED_RUNNING, GRANT_EXPIRED):
            return str(exc.args[0])
    return "grant revoked while running"


async def _bounded(runner: Callable[[], Awaitable[T]], deadline: float) -> T:
    """``runner()`` cut off with TimeoutError after ``deadline`` seconds."""
    async with asyncio.timeout(deadline):
        return await runner()


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


def _fields(attempt: Attempt, index: int, detail: str | None = None,
            duration_ms: float | None = None) -> dict[str, Any]:
    """The log line's fields: the attempt's, or, with ``detail``, its result's."""
    fields = {"index": index, "reason": attempt.reason,
              "detail": attempt.detail if detail is None else detail,
              "session_id": attempt.session_id, "seq": attempt.seq, "grant_id": attempt.grant_id,
              "operation": attempt.operation, "engineer": attempt.engineer}
    if duration_ms is not None:
        fields["duration_ms"] = round(duration_ms, 3)
    return fields
