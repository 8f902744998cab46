"""Reconciling an agent's witnessed log with the controller's session events for that agent.

Operations are matched by session and sequence number, which both sides record. Listed:

- missing on the controller: the agent logged an attempt the controller has no event for
  (an event deleted from the controller's store, or never recorded);
- missing on the agent: the controller holds the agent's signed receipt for an operation,
  but the mirrored agent log has no such attempt, although the mirror covers the receipt's
  log index (only operations the agent must have: relayed and receipted ones);
- different: both have it, but the operation digest, or the receipt's outcome or result
  digest, is not what the agent's log says;
- bad receipt: a receipt the controller keeps that cannot be read, or is not signed by the
  agent's enrolled key (it proves nothing, so it is not silently left out);
- duplicate on the controller: two session events for one (session, seq).

Receipts for entries beyond the mirror are "pending": the agent has not witnessed them yet.
Events that never reached the agent (no receipt: the agent was unreachable or did not
answer, the call was cancelled) are counted apart, so that the two totals are explained.
A witnessing refusal kept on the agent's state (a fork, a rollback, a key change) makes the
result "refused" whatever else matches; a failed exchange (witnessing stalled) makes it
"incomplete" with its reason.
:func:`compare` is pure; :func:`reconcile` reads the store in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from controller.audit.witness import EXCHANGE_FAILED
from controller.errors import NotFound
from controller.gateway.recording import OPERATION as SHELL_RECORDING
from controller.store import directory
from controller.store import witness as rows
from controller.store.codec import envelope_of
from controller.store.schema import session_events, sessions
from permissions import (
    RECEIPT,
    MalformedStatement,
    PermissionsError,
    PublicKey,
    Receipt,
    digest,
    key_id,
    load_public_key,
    verify,
)

CONSISTENT, DIFFERENT, INCOMPLETE, REFUSED = "consistent", "different", "incomplete", "refused"
MISSING_ON_CONTROLLER, MISSING_ON_AGENT, DIFFERS = (
    "missing-on-controller", "missing-on-agent", "different")
BAD_RECEIPT, DUPLICATE = "bad-receipt", "duplicate-on-controller"


@dataclass(frozen=True)
class AgentOperation:
    """An attempt in the agent's log, with its result when there is one."""

    index: int
    session_id: str
    seq: int
    operation_digest: str
    outcome: str  # the result's (ok, error, …), else the attempt's (denied, allowed)
    result_digest: str | None


@dataclass(frozen=True)
class ControllerOperation:
    """A session event of the controller, with what its receipt says when it has one."""

    event_id: int
    session_id: str
    seq: int
    operation_digest: str
    receipt: Receipt | None
    receipt_problem: str = ""  # why a kept receipt is not used (unreadable, not the agent's)
    outcome: str = ""


@dataclass(frozen=True)
class Difference:
    kind: str
    session_id: str
    seq: int
    agent_index: int = 0
    event_id: int = 0
    detail: str = ""


@dataclass(frozen=True)
class Reconciliation:
    status: str
    mirrored_size: int = 0
    cosigned_size: int = 0
    witnessed_at: float = 0.0
    agent_log_key: str = ""
    last_refusal: str = ""
    agent_operations: int = 0
    controller_operations: int = 0
    pending: int = 0
    differences: tuple[Difference, ...] = field(default_factory=tuple)
    not_relayed: int = 0  # controller events without a receipt, absent from the agent's log


def reconcile(conn: Connection, agent_id: str) -> Reconciliation:
    """Compare ``agent_id``'s mirrored log with the controller's events for it."""
    if directory.get_agent(conn, agent_id) is None:
        raise NotFound(f"no agent {agent_id}")
    record = directory.get_agent(conn, agent_id)
    state = rows.get_state(conn, agent_id)
    controller = controller_operations(conn, agent_id, _agent_key(record.public_key)
                                       if record is not None else None)
    if state is None:
        return Reconciliation(INCOMPLETE, controller_operations=len(controller),
                              last_refusal="the agent never witnessed its log")
    agent = agent_operations(entry.record for entry in rows.entries(conn, agent_id))
    found = compare(agent, controller, state.mirrored_size)
    return Reconciliation(
        with_refusal(found.status, state.last_refusal), state.mirrored_size,
        state.cosigned_size, state.witnessed_at or 0.0, state.log_key, state.last_refusal,
        len(agent), len(controller), found.pending, found.differences, found.not_relayed)


def with_refusal(status: str, last_refusal: str) -> str:
    """A kept refusal overrides "consistent": a refused fork or rollback is never
    consistent, and a failed exchange leaves the comparison incomplete."""
    if not last_refusal:
        return status
    if last_refusal.startswith(EXCHANGE_FAILED):
        return INCOMPLETE if status == CONSISTENT else status
    return REFUSED


def compare(agent: list[AgentOperation], controller: list[ControllerOperation],
            mirrored_size: int) -> Reconciliation:
    """The differences between the two sides (pure); ``mirrored_size`` bounds what the
    agent's side can be expected to hold."""
    mine = _first(agent, lambda a: a.outcome != "denied")
    theirs = _first(controller, lambda c: c.receipt is not None)
    found: list[Difference] = [*_bad_receipts(controller), *_duplicates(controller)]
    pending = not_relayed = 0
    for key, op in sorted(mine.items()):
        if key not in theirs:
            found.append(Difference(MISSING_ON_CONTROLLER, key[0], key[1], agent_index=op.index,
                                    detail=f"agent log entry {op.index} ({op.outcome}) has no "
                                    f"session event on the controller"))
    for key, event in sorted(theirs.items()):
        op = mine.get(key)
        if op is not None:
            detail = _differs(op, event)
            if detail:
                found.append(Difference(DIFFERS, key[0], key[1], op.index, event.event_id,
                                        detail))
        elif event.receipt is None:
            not_relayed += 1
        else:
            if event.receipt.log_index > mirrored_size:
                pending += 1
            else:
                found.append(Difference(
                    MISSING_ON_AGENT, key[0], key[1], event_id=event.event_id,
                    detail=f"the controller holds the agent's receipt naming log entry "
                    f"{event.receipt.log_index}, which the witnessed log does not hold"))
    status = DIFFERENT if found else INCOMPLETE if pending else CONSISTENT
    return Reconciliation(status, mirrored_size, pending=pending, differences=tuple(found),
                          not_relayed=not_relayed)


def _bad_receipts(controller: list[ControllerOperation]) -> list[Difference]:
    return [Difference(BAD_RECEIPT, c.session_id, c.seq, event_id=c.event_id,
                       detail=f"the receipt kept with event {c.event_id} is not used: "
                       f"{c.receipt_problem}")
            for c in controller if c.receipt_problem]


def _duplicates(controller: list[ControllerOperation]) -> list[Difference]:
    """One difference per (session, seq) the controller holds more than one event for."""
    events: dict[tuple[str, int], list[int]] = {}
    for c in controller:
        events.setdefault((c.session_id, c.seq), []).append(c.event_id)
    return [Difference(DUPLICATE, key[0], key[1], event_id=ids[1],
                       detail=f"the controller holds {len(ids)} session events for this "
                       f"operation: {', '.join(map(str, ids))}")
            for key, ids in sorted(events.items()) if len(ids) > 1]


def agent_operations(records: Any) -> list[AgentOperation]:
    """The attempts (with a session) of the agent's canonical records, with their results."""
    attempts: list[dict[str, Any]] = []
    results: dict[int, dict[str, Any]] = {}
    for record in records:
        if record.get("kind") == "attempt" and isinstance(record.get("session_id"), str) \
                and isinstance(record.get("seq"), int):
            attempts.append(record)
        elif record.get("kind") == "result" and isinstance(record.get("attempt_id"), int):
            results.setdefault(record["attempt_id"], record)
    found = []
    for attempt in attempts:
        result = results.get(attempt["id"])
        outcome = result["outcome"] if result else attempt.get("outcome")
        found.append(AgentOperation(
            int(attempt["id"]), attempt["session_id"], attempt["seq"],
            str(attempt.get("operation_digest")), str(outcome),
            result.get("result_digest") if result else None))
    return found


def controller_operations(conn: Connection, agent_id: str,
                          key: tuple[str, PublicKey] | None = None,
                          ) -> list[ControllerOperation]:
    """The agent's session events; receipts are checked against ``key`` (the agent's
    enrolled key: ``(key id, key)``; None: the key is unusable, no receipt counts)."""
    query = (sa.select(session_events.c.event_id, session_events.c.session_id,
                       session_events.c.seq, session_events.c.operation_envelope,
                       session_events.c.receipt, session_events.c.outcome)
             .join(sessions, sessions.c.session_id == session_events.c.session_id)
             .where(sessions.c.agent_id == agent_id,
                    # The controller's own record of a shell's output, under the number of
                    # the shell.open it belongs to: nothing was relayed for it.
                    session_events.c.operation != SHELL_RECORDING)
             .order_by(session_events.c.event_id))
    found = []
    for r in conn.execute(query):
        receipt, problem = _receipt(r.receipt, key)
        found.append(ControllerOperation(int(r.event_id), str(r.session_id), int(r.seq),
                                         digest(envelope_of(str(r.operation_envelope))),
                                         receipt, problem, str(r.outcome)))
    return found


def _agent_key(raw: bytes) -> tuple[str, PublicKey] | None:
    try:
        key = load_public_key(raw)
    except (MalformedStatement, PermissionsError, ValueError):
        return None
    return key_id(key), key


def _receipt(text: str | None, key: tuple[str, PublicKey] | None) -> tuple[Receipt | None, str]:
    """The receipt kept as ``text`` if it is signed by ``key``, else why not."""
    if text is None:
        return None, ""
    if key is None:
        return None, "the agent's enrolled key is not usable"
    try:
        return Receipt.from_payload(verify(envelope_of(text), RECEIPT, {key[0]: key[1]})), ""
    except (MalformedStatement, ValueError, KeyError) as exc:
        return None, f"unreadable ({type(exc).__name__}: {str(exc)[:200]})"
    except PermissionsError as exc:
        return None, f"not signed by the agent's enrolled key ({exc})"


def _first(items: Any, preferred: Any) -> dict[tuple[str, int], Any]:
    """One item per (session, seq): the first ``preferred`` one, else the first."""
    chosen: dict[tuple[str, int], Any] = {}
    for item in items:
        key = (item.session_id, item.seq)
        if key not in chosen or (not preferred(chosen[key]) and preferred(item)):
            chosen[key] = item
    return chosen


def _differs(op: AgentOperation, event: ControllerOperation) -> str:
    problems = []
    if op.operation_digest != event.operation_digest:
        problems.append(f"operation digest: agent {op.operation_digest}, controller "
                        f"{event.operation_digest}")
    receipt = event.receipt
    if receipt is not None:
        if receipt.operation_digest != op.operation_digest:
            problems.append(f"the receipt names operation {receipt.operation_digest}, the "
                            f"agent log {op.operation_digest}")
        if receipt.outcome != op.outcome:
            problems.append(f"the receipt says {receipt.outcome}, the agent log {op.outcome}")
        if receipt.result_digest != (op.result_digest or ""):
            problems.append(f"result digest: receipt {receipt.result_digest}, agent log "
                            f"{op.result_digest}")
    return "; ".join(problems)
