"""Support bundles attached to cases; their bytes are blobs stored by SHA-256.

A bundle is attached in the same transaction that finishes the session event of the
``bundle.create`` that made it, and only once its SHA-256 matched the one the agent's
receipt signs. The same bytes attached to a case twice stay one attachment (the first).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from controller.store import blobs
from controller.store.schema import blobs as blob_table
from controller.store.schema import case_bundles


@dataclass(frozen=True)
class Bundle:
    case_id: str
    sha256: str
    size: int
    session_id: str
    event_id: int
    agent_id: str
    created_at: float
    stored: bool = True  # whether the blob is still there (not removed under retention)


_STORED = blob_table.c.sha256.is_not(None).label("stored")


def attach(conn: Connection, bundle: Bundle, data: bytes) -> bool:
    """Store ``data`` as a blob and attach it to the case; False if it already was."""
    digest = blobs.put(conn, data, bundle.created_at)
    assert digest == bundle.sha256, "the caller checked the bundle's hash"
    exists = conn.execute(sa.select(case_bundles.c.sha256).where(
        case_bundles.c.case_id == bundle.case_id,
        case_bundles.c.sha256 == bundle.sha256)).first()
    if exists is not None:
        return False
    conn.execute(case_bundles.insert().values(
        case_id=bundle.case_id, sha256=bundle.sha256, size=bundle.size,
        session_id=bundle.session_id, event_id=bundle.event_id, agent_id=bundle.agent_id,
        created_at=bundle.created_at))
    return True


def list_bundles(conn: Connection, case_id: str) -> list[Bundle]:
    """A case's bundles, oldest first."""
    rows = conn.execute(_select().where(case_bundles.c.case_id == case_id)
                        .order_by(case_bundles.c.created_at, case_bundles.c.sha256))
    return [_bundle(row) for row in rows]


def get_bundle(conn: Connection, case_id: str, sha256: str = "") -> tuple[Bundle, bytes | None] | None:
    """The case's bundle with that hash (default: its newest) and its bytes (None once
    removed); None if the case has no such bundle."""
    query = _select().where(case_bundles.c.case_id == case_id)
    if sha256:
        query = query.where(case_bundles.c.sha256 == sha256)
    row = conn.execute(query.order_by(case_bundles.c.created_at.desc()).limit(1)).first()
    if row is None:
        return None
    bundle = _bundle(row)
    return bundle, blobs.get(conn, bundle.sha256) if bundle.stored else None


def _select() -> sa.Select[tuple[object, ...]]:
    return sa.select(*case_bundles.c, _STORED).select_from(
        case_bundles.outerjoin(blob_table, blob_table.c.sha256 == case_bundles.c.sha256))


def _bundle(row: sa.Row[tuple[object, ...]]) -> Bundle:
    m = row._mapping
    return Bundle(case_id=m["case_id"], sha256=m["sha256"], size=int(m["size"]),
                  session_id=m["session_id"], event_id=int(m["event_id"]),
                  agent_id=m["agent_id"], created_at=float(m["created_at"]),
                  stored=bool(m["stored"]))
