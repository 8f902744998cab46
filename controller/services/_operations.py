"""EngineerService.RunOperation: record the attempt, relay it, record how it ended.

Record before act: the session event is committed with outcome "pending" before a byte
goes to the agent, so a crash mid-relay still leaves the attempt in the case's log.
The controller only relays: it verifies the engineer's signature but cannot change the
signed bytes, and the agent decides whether anything runs.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import time
from dataclasses import dataclass

import grpc
from sqlalchemy.engine import Connection

from controller import rules
from controller.authz import Caller
from controller.errors import (
    AgentFailed,
    AgentTimedOut,
    AgentUnreachable,
    ControllerError,
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
)
from controller.logs import log_event
from controller.relay import Outcome, Relayed
from controller.services import _common
from controller.services._common import Deps
from controller.services.locks import refuse_locked
from controller.store import sessions
from controller.store.records import SessionEvent
from permissions import (
    OPERATION,
    RECEIPT,
    BadSignature,
    Envelope,
    MalformedStatement,
    Operation,
    PermissionsError,
    PublicKey,
    Receipt,
    digest,
    key_id,
    load_public_key,
    verify,
)
from permissions.locks import Subject
from rmaint.envelopes import from_wire
from rmaint.text import printable
from rmaint.v1 import agent_pb2

# The agent says this when its log cannot take the attempt: reachable, but refusing.
_CANNOT_RECORD = "operation refused"


@dataclass(frozen=True)
class _Attempt:
    recorded: sessions.Recorded
    agent_address: str
    agent_key: bytes

    @property
    def event_id(self) -> int:
        return self.recorded.event_id


async def run_operation(deps: Deps, caller: Caller,
                        request: agent_pb2.ExecuteRequest) -> agent_pb2.ExecuteResponse:
    """Relay one engineer-signed operation and answer with the agent's result and receipt."""
    envelope = _common.envelope(request.operation, "operation")
    op = _verified(envelope, caller)
    attempt = await deps.store.write(_record_attempt, caller, op, envelope, deps.clock())
    started = time.monotonic()
    try:
        relayed = await deps.relay.execute(op.agent_id, attempt.agent_address,
                                           agent_pb2.ExecuteRequest(operation=request.operation))
    except asyncio.CancelledError:
        await asyncio.shield(_finish(deps, attempt, Outcome.CANCELLED,
                                     "the engineer's call was cancelled", started, None))
        raise
    receipt, note = _checked_receipt(relayed, attempt, envelope, op)
    await _finish(deps, attempt, relayed.outcome, _detail(relayed, note), started, receipt)
    log_event("operation.relayed", session_id=op.session_id, seq=op.seq,
              operation=op.operation, agent_id=op.agent_id, outcome=relayed.outcome.value,
              code=relayed.code.name, receipt_problem=note, event_id=attempt.event_id)
    if relayed.response is None:
        raise _error_for(relayed, op.agent_id)
    return agent_pb2.ExecuteResponse(result_json=relayed.response.result_json,
                                     receipt=relayed.response.receipt,
                                     event_id=attempt.event_id)


def _verified(envelope: Envelope, caller: Caller) -> Operation:
    if caller.public_key is None:
        raise PermissionDenied(f"{caller} has no usable certificate key")
    try:
        payload = verify(envelope, OPERATION, {caller.key_id: caller.public_key})
        return Operation.from_payload(payload)
    except BadSignature as exc:
        raise PermissionDenied(f"operation not signed by {caller}'s certificate key") from exc
    except MalformedStatement as exc:
        raise InvalidArgument(f"operation: {exc}") from exc


def _record_attempt(conn: Connection, caller: Caller, op: Operation, envelope: Envelope,
                    now: float) -> _Attempt:
    target = sessions.relay_target(conn, op.session_id, lock=True)
    session = rules.check_session_for(target.session if target else None,
                                      op.session_id, caller.name)
    assert target is not None, "check_session_for refuses a missing session"
    if not session.is_open:
        raise FailedPrecondition(f"session {session.session_id} is closed "
                                 f"({session.end_reason})")
    if (op.agent_id, op.case_id, op.grant_id) != (session.agent_id, session.case_id,
                                                  session.grant_id):
        raise InvalidArgument(f"the operation names another agent, case or grant than "
                              f"session {session.session_id}")
    if sessions.seq_recorded(conn, op.session_id, op.seq):
        # A replay: the agent would refuse it, and a second event for one sequence number
        # would make the two logs disagree (audit reconcile). Nothing is relayed.
        raise FailedPrecondition(f"operation {op.seq} of session {op.session_id} was already "
                                 "relayed; each operation is signed with a new sequence number")
    refuse_locked(conn, Subject(agent_id=op.agent_id, grant_id=op.grant_id, case_id=op.case_id,
                                engineer_key_id=caller.key_id), now, "operation")
    recorded = sessions.add_event(conn, SessionEvent(
        event_id=None, session_id=op.session_id, seq=op.seq, engineer=caller.name,
        operation=op.operation, params_json=json.dumps(op.params, sort_keys=True),
        outcome="pending", detail="", started_at=now, duration_ms=None, receipt=None,
        operation_envelope=envelope,
    ), case_id=session.case_id)
    return _Attempt(recorded, target.agent_address, target.agent_public_key)


async def _finish(deps: Deps, attempt: _Attempt, outcome: Outcome, detail: str,
                  started: float, receipt: Envelope | None) -> None:
    elapsed_ms = (time.monotonic() - started) * 1000.0
    await deps.store.write(sessions.finish_event, attempt.recorded, outcome=outcome.value,
                           detail=detail, duration_ms=elapsed_ms, receipt=receipt)


def _checked_receipt(relayed: Relayed, attempt: _Attempt, envelope: Envelope,
                     op: Operation) -> tuple[Envelope | None, str]:
    """The agent's receipt as the session log keeps it (None if absent or unreadable), and
    what is wrong with it: empty if it is signed by the agent's enrolled key and covers
    this exchange."""
    if relayed.response is None:
        return None, ""
    try:
        receipt_env = from_wire(relayed.response.receipt)
    except MalformedStatement as exc:
        return None, f"receipt not verified: {exc}"
    try:
        key, kid = _agent_key(attempt.agent_key)
        receipt = Receipt.from_payload(verify(receipt_env, RECEIPT, {kid: key}))
    except PermissionsError as exc:
        return receipt_env, f"receipt not verified: {exc}"
    result = "sha256:" + hashlib.sha256(relayed.response.result_json).hexdigest()
    covered = (receipt.operation_digest == digest(envelope) and receipt.result_digest == result
               and (receipt.session_id, receipt.seq) == (op.session_id, op.seq))
    return receipt_env, "" if covered else "receipt does not cover this operation and result"


@functools.lru_cache(maxsize=1024)
def _agent_key(raw: bytes) -> tuple[PublicKey, str]:
    """An enrolled agent's key, loaded and named once per distinct key (raises if unusable)."""
    key = load_public_key(raw)
    return key, key_id(key)


def _detail(relayed: Relayed, note: str) -> str:
    parts = [] if relayed.response is not None else [f"{relayed.code.name}: {relayed.detail}"]
    return "; ".join(parts + ([note] if note else []))


def _error_for(relayed: Relayed, agent_id: str) -> ControllerError:
    """What the engineer learns when the agent gave no result."""
    code = relayed.code
    if code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.CANCELLED):
        return PermissionDenied(f"agent {agent_id} refused: {relayed.detail}")
    if code == grpc.StatusCode.UNAVAILABLE and relayed.detail.startswith(_CANNOT_RECORD):
        return AgentFailed(f"agent {agent_id}: {relayed.detail}")
    if code == grpc.StatusCode.UNAVAILABLE:
        return AgentUnreachable(f"agent {agent_id} is unreachable")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return AgentTimedOut(f"agent {agent_id} did not answer in time")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgument(relayed.detail or f"agent {agent_id} refused the parameters")
    if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.FAILED_PRECONDITION) \
            and relayed.detail and relayed.detail != "internal error":
        # The agent's own words for why (rows changed since the preview, no such change):
        # written to be shown to the engineer, shown inert.
        return AgentFailed(f"agent {agent_id} could not run the operation: "
                           f"{printable(relayed.detail)[:500]}")
    return AgentFailed(f"agent {agent_id} could not run the operation ({code.name})")
