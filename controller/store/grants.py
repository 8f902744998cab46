"""Grants as the customer's agents reported them, with revocation and expiry marks."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from controller.store.records import GrantRecord, dump, load
from controller.store.schema import grants


def add_grant(conn: Connection, grant: GrantRecord) -> None:
    conn.execute(grants.insert().values(dump(grant)))


def get_grant(conn: Connection, grant_id: str) -> GrantRecord | None:
    row = conn.execute(grants.select().where(grants.c.grant_id == grant_id)).first()
    return None if row is None else load(GrantRecord, row)


def grants_by_id(conn: Connection, grant_ids: set[str]) -> dict[str, GrantRecord]:
    """The reported grants among ``grant_ids``, by id."""
    if not grant_ids:
        return {}
    rows = conn.execute(grants.select().where(grants.c.grant_id.in_(sorted(grant_ids))))
    return {record.grant_id: record for record in (load(GrantRecord, r) for r in rows)}


def newest_active_grant(conn: Connection, *, case_id: str, agent_id: str,
                        engineer_key_id: str, now: float) -> GrantRecord | None:
    """The newest grant for that key on case and agent, unrevoked and valid at ``now``."""
    row = conn.execute(grants.select().where(
        grants.c.case_id == case_id, grants.c.agent_id == agent_id,
        grants.c.engineer_key_id == engineer_key_id, grants.c.revoked_at.is_(None),
        grants.c.not_before <= now, grants.c.not_after > now,
    ).order_by(grants.c.not_before.desc(), grants.c.recorded_at.desc()).limit(1)).first()
    return None if row is None else load(GrantRecord, row)


def mark_revoked(conn: Connection, grant_id: str, now: float) -> bool:
    """Record the revocation once; False if it was already revoked."""
    return conn.execute(grants.update().where(
        grants.c.grant_id == grant_id, grants.c.revoked_at.is_(None),
    ).values(revoked_at=now)).rowcount == 1


def due_for_expiry(conn: Connection, now: float) -> list[GrantRecord]:
    """Unrevoked grants whose window ended at or before ``now`` and whose expiry is unlogged."""
    rows = conn.execute(grants.select().where(
        grants.c.not_after <= now, grants.c.expired_at.is_(None), grants.c.revoked_at.is_(None),
    ).order_by(grants.c.not_after, grants.c.grant_id))
    return [load(GrantRecord, r) for r in rows]


def mark_expired(conn: Connection, grant_id: str, now: float) -> bool:
    """Claim the expiry of one grant; False if another sweep (or replica) did already."""
    return conn.execute(grants.update().where(
        grants.c.grant_id == grant_id, grants.c.expired_at.is_(None),
    ).values(expired_at=now)).rowcount == 1


def grants_of_case(conn: Connection, case_id: str) -> list[GrantRecord]:
    rows = conn.execute(grants.select().where(grants.c.case_id == case_id)
                        .order_by(grants.c.recorded_at, grants.c.grant_id))
    return [load(GrantRecord, r) for r in rows]


def count_grants(conn: Connection) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(grants)).scalar_one()
