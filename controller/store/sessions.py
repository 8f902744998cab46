"""Remote sessions and their events (one per operation attempt).

The statements of a relayed operation (:func:`relay_target`, :func:`add_event`,
:func:`finish_event`) are built once with bound parameters: SQLAlchemy then reuses their
compiled form instead of rebuilding and hashing a new statement on every call.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from controller.store import auditlog, events
from controller.store.codec import envelope_text
from controller.store.records import Session, SessionEvent, dump, load
from controller.store.schema import agents, session_events, sessions
from permissions import Envelope

_RELAY_TARGET = (
    sa.select(sessions, agents.c.address.label("agent_address"),
              agents.c.public_key.label("agent_public_key"))
    .join(agents, agents.c.agent_id == sessions.c.agent_id)
    .where(sessions.c.session_id == sa.bindparam("b_session_id"))
)
_ADD_EVENT = session_events.insert()
_CASE_OF_SESSION = sa.select(sessions.c.case_id).where(
    sessions.c.session_id == sa.bindparam("b_session_id"))
_EVENT = session_events.select().where(session_events.c.event_id == sa.bindparam("b_event_id"))
# The SET clause comes from the parameter names given at execution.
_FINISH_EVENT = session_events.update().where(
    session_events.c.event_id == sa.bindparam("b_event_id"))


@dataclass(frozen=True)
class RelayTarget:
    """A session with the address and public key of its agent, read together."""

    session: Session
    agent_address: str
    agent_public_key: bytes


def add_session(conn: Connection, session: Session) -> None:
    conn.execute(sessions.insert().values(dump(session)))
    auditlog.append(conn, events.session_opened(session))


def get_session(conn: Connection, session_id: str) -> Session | None:
    row = conn.execute(sessions.select().where(sessions.c.session_id == session_id)).first()
    return None if row is None else load(Session, row)


def list_sessions(conn: Connection, *, case_id: str = "", newest_first: bool = True,
                  ) -> list[Session]:
    order = sessions.c.started_at
    query = sessions.select().order_by(order.desc() if newest_first else order,
                                       sessions.c.session_id)
    if case_id:
        query = query.where(sessions.c.case_id == case_id)
    return [load(Session, r) for r in conn.execute(query)]


def close_session(conn: Connection, session_id: str, reason: str, now: float) -> bool:
    """End one open session; False if it had ended already."""
    session = get_session(conn, session_id)
    closed = conn.execute(sessions.update().where(
        sessions.c.session_id == session_id, sessions.c.ended_at.is_(None),
    ).values(ended_at=now, end_reason=reason)).rowcount == 1
    if closed and session is not None:
        auditlog.append(conn, events.session_closed(session, reason, now))
    return closed


def close_open_sessions(conn: Connection, *, reason: str, now: float,
                        grant_id: str = "", case_id: str = "") -> int:
    """End the open sessions under a grant or of a case; returns how many."""
    assert grant_id or case_id, "name a grant or a case"
    where: list[sa.ColumnElement[bool]] = [sessions.c.ended_at.is_(None)]
    if grant_id:
        where.append(sessions.c.grant_id == grant_id)
    if case_id:
        where.append(sessions.c.case_id == case_id)
    # Read first: each closed session gets its own "closed" record, in this transaction.
    open_ones = [load(Session, r) for r in conn.execute(
        sessions.select().where(*where).order_by(sessions.c.session_id))]
    ended = conn.execute(sessions.update().where(
        *where, sessions.c.session_id.in_([s.session_id for s in open_ones]),
    ).values(ended_at=now, end_reason=reason)).rowcount
    auditlog.append_many(conn, [events.session_closed(s, reason, now) for s in open_ones])
    return int(ended)


def relay_target(conn: Connection, session_id: str) -> RelayTarget | None:
    """The session and its agent's address and key in one query; None if no such session."""
    row = conn.execute(_RELAY_TARGET, {"b_session_id": session_id}).first()
    if row is None:
        return None
    columns = row._mapping
    return RelayTarget(load(Session, row), columns["agent_address"],
                       bytes(columns["agent_public_key"]))


def add_event(conn: Connection, event: SessionEvent) -> int:
    """Insert ``event`` (its ``event_id`` is ignored), log it, and return the id it got."""
    result = conn.execute(_ADD_EVENT, dump(event, skip=("event_id",)))
    key = result.inserted_primary_key
    assert key is not None, "inserts report their primary key"
    event_id = int(key[0])
    case_id = conn.execute(_CASE_OF_SESSION, {"b_session_id": event.session_id}).scalar_one()
    auditlog.append(conn, events.operation_attempted(event, event_id, case_id))
    return event_id


def finish_event(conn: Connection, event_id: int, *, outcome: str, detail: str,
                 duration_ms: float, receipt: Envelope | None) -> None:
    """Record how a relayed operation ended; the outcome is a second log record."""
    conn.execute(_FINISH_EVENT, {
        "b_event_id": event_id, "outcome": outcome, "detail": detail,
        "duration_ms": duration_ms,
        "receipt": None if receipt is None else envelope_text(receipt),
    })
    finished = get_event(conn, event_id)
    assert finished is not None, "the event was just updated"
    case_id = conn.execute(_CASE_OF_SESSION, {"b_session_id": finished.session_id}).scalar_one()
    auditlog.append(conn, events.operation_finished(finished, case_id))


def list_events(conn: Connection, session_id: str) -> list[SessionEvent]:
    """In the order they were recorded."""
    rows = conn.execute(session_events.select().where(session_events.c.session_id == session_id)
                        .order_by(session_events.c.event_id))
    return [load(SessionEvent, r) for r in rows]


def get_event(conn: Connection, event_id: int) -> SessionEvent | None:
    row = conn.execute(_EVENT, {"b_event_id": event_id}).first()
    return None if row is None else load(SessionEvent, row)
