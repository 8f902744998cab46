"""Support cases, numbered C-0001, C-0002, ... in the order they were opened."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from controller.store.records import Case, dump, load
from controller.store.schema import case_notes, cases, counters

CASE_COUNTER = "cases"


def next_case_id(conn: Connection) -> str:
    """Take the next case number; the row lock (or SQLite's write lock) serializes takers."""
    conn.execute(counters.update().where(counters.c.name == CASE_COUNTER)
                 .values(value=counters.c.value + 1))
    number = conn.execute(
        sa.select(counters.c.value).where(counters.c.name == CASE_COUNTER)).scalar_one()
    return f"C-{number:04d}"


def add_case(conn: Connection, case: Case) -> None:
    conn.execute(cases.insert().values(dump(case)))


def get_case(conn: Connection, case_id: str) -> Case | None:
    row = conn.execute(cases.select().where(cases.c.case_id == case_id)).first()
    return None if row is None else load(Case, row)


def list_cases(conn: Connection, *, status: str = "", customer_id: str = "",
               limit: int | None = None) -> list[Case]:
    """Newest first; at most ``limit`` of them."""
    # Ids grow past four digits, so order by number (length, then text), not text alone.
    query = _matching(cases.select(), status, customer_id).order_by(
        sa.func.length(cases.c.case_id).desc(), cases.c.case_id.desc())
    if limit is not None:
        query = query.limit(limit)
    return [load(Case, r) for r in conn.execute(query)]


def count_cases(conn: Connection, *, status: str = "", customer_id: str = "") -> int:
    """How many cases :func:`list_cases` would list with no limit."""
    query = _matching(sa.select(sa.func.count()).select_from(cases), status, customer_id)
    return int(conn.execute(query).scalar_one())


def _matching(query: Any, status: str, customer_id: str) -> Any:
    if status:
        query = query.where(cases.c.status == status)
    if customer_id:
        query = query.where(cases.c.customer_id == customer_id)
    return query


def close_case(conn: Connection, case_id: str, resolution: str, now: float) -> bool:
    """Close an open case; False if it was not open."""
    return conn.execute(
        cases.update().where(cases.c.case_id == case_id, cases.c.status == "open")
        .values(status="closed", closed_at=now, resolution=resolution)
    ).rowcount == 1


def add_note(conn: Connection, case_id: str, at: float, author: str, text: str) -> None:
    """Append a note to a case (notes are never changed or removed)."""
    conn.execute(case_notes.insert().values(case_id=case_id, at=at, author=author, text=text))


def list_notes(conn: Connection, case_id: str) -> list[tuple[float, str, str]]:
    """(at, author, text) of the case's notes, oldest first."""
    rows = conn.execute(sa.select(case_notes.c.at, case_notes.c.author, case_notes.c.text)
                        .where(case_notes.c.case_id == case_id)
                        .order_by(case_notes.c.note_id))
    return [(row.at, row.author, row.text) for row in rows]
