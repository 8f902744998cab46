"""Remote sessions and their events (one per operation attempt).

Every relayed operation runs :func:`relay_target`, :func:`add_event` and
:func:`finish_event`. The first runs at the driver (see :mod:`controller.store.driver`); the
others' statements are built once with bound parameters, so SQLAlchemy reuses their
compiled form. The event as :func:`add_event` recorded it goes to :func:`finish_event`,
which so reads nothing back.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from controller.errors import NotFound
from controller.store import auditlog, driver, events
from controller.store.codec import envelope_text
from controller.store.records import Session, SessionEvent, dump, load
from controller.store.schema import session_events, sessions
from permissions import Envelope

# Read before every relayed operation, so run at the driver (see controller.store.driver).
_RELAY_TARGET = (
    "SELECT s.session_id, s.engineer, s.case_id, s.agent_id, s.grant_id, s.started_at, "
    "s.ended_at, s.end_reason, a.address, a.public_key "
    "FROM sessions s JOIN agents a ON a.agent_id = s.agent_id WHERE s.session_id = ?")
_SEQ_RECORDED = "SELECT 1 FROM session_events WHERE session_id = ? AND seq = ?"
_SESSION_LOCK = "SELECT pg_advisory_xact_lock(hashtext('rmaint.session:' || ?))"
_ADD_EVENT = session_events.insert()
_CASE_OF_SESSION = sa.select(sessions.c.case_id).where(
    sessions.c.session_id == sa.bindparam("b_session_id"))
# The SET clause comes from the parameter names given at execution.
_FINISH_EVENT = session_events.update().where(
    session_events.c.event_id == sa.bindparam("b_event_id"))


@dataclass(frozen=True)
class Recorded:
    """A session event as recorded: ``event`` with its ``event_id``, and the session's case."""

    event: SessionEvent
    case_id: str

    @property
    def event_id(self) -> int:
        assert self.event.event_id is not None, "a recorded event has its id"
        return self.event.event_id


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


def relay_target(conn: Connection, session_id: str, *,
                 lock: bool = False) -> RelayTarget | None:
    """The session and its agent's address and key in one query; None if no such session.

    ``lock``: until the transaction ends, no other transaction that asks the same can go
    on, so that what is read of the session's events next cannot change meanwhile. On
    PostgreSQL an advisory lock on the session id, taken first: a row lock would be taken
    before the audit log's head, where a revocation takes the head first and then updates
    the session, and the two would deadlock. SQLite runs one write transaction at a time."""
    if lock and conn.dialect.name != "sqlite":
        driver.rows(conn, _SESSION_LOCK, (session_id,))
    found = driver.rows(conn, _RELAY_TARGET, (session_id,))
    if not found:
        return None
    [row] = found
    sid, engineer, case_id, agent_id, grant_id, started, ended, reason, address, key = row
    session = Session(sid, engineer, case_id, agent_id, grant_id, float(started),
                      None if ended is None else float(ended), reason)
    return RelayTarget(session, address, bytes(key))


def seq_recorded(conn: Connection, session_id: str, seq: int) -> bool:
    """Whether the session already holds an event with sequence number ``seq``."""
    return bool(driver.rows(conn, _SEQ_RECORDED, (session_id, seq)))


def add_event(conn: Connection, event: SessionEvent, *, case_id: str | None = None) -> Recorded:
    """Insert ``event`` (its ``event_id`` is ignored) and log it; ``case_id`` is the
    session's case, read here if not given."""
    result = conn.execute(_ADD_EVENT, dump(event, skip=("event_id",)))
    key = result.inserted_primary_key
    assert key is not None, "inserts report their primary key"
    event_id = int(key[0])
    if case_id is None:
        case_id = conn.execute(_CASE_OF_SESSION,
                               {"b_session_id": event.session_id}).scalar_one()
    auditlog.append(conn, events.operation_attempted(event, event_id, case_id))
    return Recorded(replace(event, event_id=event_id), case_id)


def finish_event(conn: Connection, started: Recorded, *, outcome: str, detail: str,
                 duration_ms: float, receipt: Envelope | None) -> None:
    """Record how a relayed operation ended; the outcome is a second log record."""
    updated = conn.execute(_FINISH_EVENT, {
        "b_event_id": started.event_id, "outcome": outcome, "detail": detail,
        "duration_ms": duration_ms,
        "receipt": None if receipt is None else envelope_text(receipt),
    }).rowcount
    if updated != 1:  # no outcome record for an event the table does not hold
        raise NotFound(f"session event {started.event_id} does not exist")
    finished = replace(started.event, outcome=outcome, detail=detail, duration_ms=duration_ms,
                       receipt=receipt)
    auditlog.append(conn, events.operation_finished(finished, started.case_id))


def list_events(conn: Connection, session_id: str) -> list[SessionEvent]:
    """In the order they were recorded."""
    rows = conn.execute(session_events.select().where(session_events.c.session_id == session_id)
                        .order_by(session_events.c.event_id))
    return [load(SessionEvent, r) for r in rows]
