"""Access requests and the consent log (append-only: entries are never changed)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from controller.errors import AlreadyExists
from controller.store import auditlog, events
from controller.store.records import ConsentEntry, RequestRecord, dump, load
from controller.store.schema import access_requests, consent_log

PENDING = "pending"


def add_request(conn: Connection, request: RequestRecord) -> None:
    """Insert ``request``; AlreadyExists if its id (chosen by the engineer) is taken."""
    if get_request(conn, request.request_id) is not None:
        raise AlreadyExists(f"access request {request.request_id} already exists")
    conn.execute(access_requests.insert().values(dump(request)))


def get_request(conn: Connection, request_id: str) -> RequestRecord | None:
    row = conn.execute(
        access_requests.select().where(access_requests.c.request_id == request_id)).first()
    return None if row is None else load(RequestRecord, row)


def list_requests(conn: Connection, *, engineer: str = "", case_id: str = "",
                  newest_first: bool = True) -> list[RequestRecord]:
    order = access_requests.c.created_at
    query = access_requests.select().order_by(order.desc() if newest_first else order,
                                              access_requests.c.request_id)
    if engineer:
        query = query.where(access_requests.c.engineer == engineer)
    if case_id:
        query = query.where(access_requests.c.case_id == case_id)
    return [load(RequestRecord, r) for r in conn.execute(query)]


def pending_for_agent(conn: Connection, agent_id: str, since: float) -> list[RequestRecord]:
    """Undecided requests for ``agent_id`` filed after ``since``, oldest first."""
    query = access_requests.select().where(
        access_requests.c.agent_id == agent_id, access_requests.c.status == PENDING,
        access_requests.c.created_at > since,
    ).order_by(access_requests.c.created_at, access_requests.c.request_id)
    return [load(RequestRecord, r) for r in conn.execute(query)]


def count_pending(conn: Connection, *, engineer: str, agent_id: str, since: float) -> int:
    """How many of ``engineer``'s requests to ``agent_id`` filed after ``since`` wait."""
    query = sa.select(sa.func.count()).select_from(access_requests).where(
        access_requests.c.engineer == engineer, access_requests.c.agent_id == agent_id,
        access_requests.c.status == PENDING, access_requests.c.created_at > since)
    return int(conn.execute(query).scalar_one())


def stale_requests(conn: Connection, cutoff: float) -> list[RequestRecord]:
    """Pending requests filed at or before ``cutoff``."""
    query = access_requests.select().where(
        access_requests.c.status == PENDING, access_requests.c.created_at <= cutoff,
    ).order_by(access_requests.c.created_at)
    return [load(RequestRecord, r) for r in conn.execute(query)]


def set_status(conn: Connection, request_id: str, status: str, *,
               only_if: tuple[str, ...] = (), grant_id: str | None = None) -> bool:
    """Change a request's status (and grant) if its current status is in ``only_if``."""
    query = access_requests.update().where(access_requests.c.request_id == request_id)
    if only_if:
        query = query.where(access_requests.c.status.in_(only_if))
    values: dict[str, str] = {"status": status}
    if grant_id is not None:
        values["grant_id"] = grant_id
    return conn.execute(query.values(values)).rowcount == 1


def append_consent(conn: Connection, entry: ConsentEntry) -> int:
    """Append ``entry`` (its ``entry_id`` is ignored) and its log record; the id it got."""
    result = conn.execute(consent_log.insert().values(dump(entry, skip=("entry_id",))))
    key = result.inserted_primary_key
    assert key is not None, "inserts report their primary key"
    auditlog.append(conn, events.consent_event(entry))
    return int(key[0])


def consent_entries(conn: Connection, *, case_id: str = "", agent_id: str = "",
                    newest: int | None = None) -> list[ConsentEntry]:
    """Oldest first; only the ``newest`` so many when given."""
    query = _consent_of(consent_log.select(), case_id, agent_id)
    if newest is None:
        rows = conn.execute(query.order_by(consent_log.c.entry_id))
        return [load(ConsentEntry, r) for r in rows]
    rows = conn.execute(query.order_by(consent_log.c.entry_id.desc()).limit(newest))
    return [load(ConsentEntry, r) for r in rows][::-1]


def count_consent_entries(conn: Connection, *, case_id: str = "", agent_id: str = "") -> int:
    query = _consent_of(sa.select(sa.func.count()).select_from(consent_log), case_id, agent_id)
    return int(conn.execute(query).scalar_one())


def _consent_of(query: Any, case_id: str, agent_id: str) -> Any:
    if case_id:
        query = query.where(consent_log.c.case_id == case_id)
    if agent_id:
        query = query.where(consent_log.c.agent_id == agent_id)
    return query


def count_consent(conn: Connection, kind: str, request_id: str) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(consent_log).where(
        consent_log.c.kind == kind, consent_log.c.request_id == request_id)).scalar_one()
