"""Reconciling an agent's witnessed log with the controller's session events for that agent.

Operations are matched by session and sequence number, which both sides record. Listed:

- missing on the controller: the agent logged an attempt the controller has no event for
  (an event deleted from the controller's store, or never recorded);
- missing on the agent: the controller holds the agent's signed receipt for an operation,
  but the mirrored agent log has no such attempt, although the mirror covers the receipt's
  log index (only operations the agent must have: relayed and receipted ones);
- different: both have it, but the operation digest, or the receipt's outcome or result
  digest, is not what the agent's log says.

Receipts for entries beyond the mirror are "pending": the agent has not witnessed them yet.
:func:`compare` is pure; :func:`reconcile` reads the store in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from controller.errors import NotFound
from controller.store import directory
from controller.store import witness as rows
from controller.store.codec import envelope_of
from controller.store.schema import session_events, sessions
from permissions import MalformedStatement, Receipt, digest

CONSISTENT, DIFFERENT, INCOMPLETE = "consistent", "different", "incomplete"
MISSING_ON_CONTROLLER, MISSING_ON_AGENT, DIFFERS = (
    "missing-on-controller", "missing-on-agent", "different")


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


def reconcile(conn: Connection, agent_id: str) -> Reconciliation:
    """Compare ``agent_id``'s mirrored log with the controller's events for it."""
    if directory.get_agent(conn, agent_id) is None:
        raise NotFound(f"no agent {agent_id}")
    state = rows.get_state(conn, agent_id)
    controller = controller_operations(conn, agent_id)
    if state is None:
        return Reconciliation(INCOMPLETE, controller_operations=len(controller),
                              last_refusal="the agent never witnessed its log")
    agent = agent_operations(entry.record for entry in rows.entries(conn, agent_id))
    found = compare(agent, controller, state.mirrored_size)
    return Reconciliation(
        found.status, state.mirrored_size, state.cosigned_size, state.witnessed_at or 0.0,
        state.log_key, state.last_refusal, len(agent), len(controller), found.pending,
        found.differences)


def compare(agent: list[AgentOperation], controller: list[ControllerOperation],
            mirrored_size: int) -> Reconciliation:
    """The differences between the two sides (pure); ``mirrored_size`` bounds what the
    agent's side can be expected to hold."""
    mine = _first(agent, lambda a: a.outcome != "denied")
    theirs = _first(controller, lambda c: c.receipt is not None)
    found: list[Difference] = []
    pending = 0
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
        elif event.receipt is not None:
            if event.receipt.log_index > mirrored_size:
                pending += 1
            else:
                found.append(Difference(
                    MISSING_ON_AGENT, key[0], key[1], event_id=event.event_id,
                    detail=f"the controller holds the agent's receipt naming log entry "
                    f"{event.receipt.log_index}, which the witnessed log does not hold"))
    status = DIFFERENT if found else INCOMPLETE if pending else CONSISTENT
    return Reconciliation(status, mirrored_size, pending=pending, differences=tuple(found))


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


def controller_operations(conn: Connection, agent_id: str) -> list[ControllerOperation]:
    query = (sa.select(session_events.c.event_id, session_events.c.session_id,
                       session_events.c.seq, session_events.c.operation_envelope,
                       session_events.c.receipt)
             .join(sessions, sessions.c.session_id == session_events.c.session_id)
             .where(sessions.c.agent_id == agent_id).order_by(session_events.c.event_id))
    return [ControllerOperation(int(r.event_id), str(r.session_id), int(r.seq),
                                digest(envelope_of(str(r.operation_envelope))),
                                _receipt(r.receipt)) for r in conn.execute(query)]


def _receipt(text: str | None) -> Receipt | None:
    if text is None:
        return None
    try:
        return Receipt.from_payload(envelope_of(text).payload)
    except (MalformedStatement, ValueError, KeyError):
        return None


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
