"""The controller's log in the store: append records, read them back with their proofs.

:func:`append` runs inside the caller's transaction, so an event's record commits or rolls
back with the row it describes. Appends take the head row ``FOR UPDATE`` (PostgreSQL
replicas queue on it; SQLite's single writer needs no lock), extend its compact range, and
store every perfect subtree that completes, which is what the proofs read: O(log n) rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

import tlog
from controller.audit.records import OPENED, Event, Link, encode
from controller.store.schema import (
    audit_checkpoints,
    audit_head,
    audit_leaves,
    audit_nodes,
    audit_session_heads,
)

_LEAF_COLUMNS = ("leaf_index", "record", "leaf_hash", "case_id", "session_id")
_NODE_COLUMNS = ("level", "node_index", "digest")
_HEAD = sa.select(audit_head.c.size, audit_head.c.compact_range).where(audit_head.c.head_id == 1)
_HEAD_LOCKED = _HEAD.with_for_update()
_SET_HEAD = audit_head.update().where(audit_head.c.head_id == 1)
# Built once with an expanding parameter: SQLAlchemy reuses their compiled form on the hot path.
_SESSION_HEADS = sa.select(audit_session_heads).where(
    audit_session_heads.c.session_id.in_(sa.bindparam("b_ids", expanding=True)))
_DROP_SESSION_HEADS = audit_session_heads.delete().where(
    audit_session_heads.c.session_id.in_(sa.bindparam("b_ids", expanding=True)))
_ADD_SESSION_HEAD = audit_session_heads.insert()
_NODE = sa.select(audit_nodes.c.digest).where(audit_nodes.c.level == sa.bindparam("b_level"),
                                              audit_nodes.c.node_index == sa.bindparam("b_index"))


@dataclasses.dataclass(frozen=True)
class Leaf:
    """One stored leaf: its index, canonical record bytes and stored leaf hash."""

    index: int
    record: bytes
    leaf_hash: bytes


@dataclasses.dataclass(frozen=True)
class StoredCheckpoint:
    size: int
    root_hash: bytes
    note: bytes
    signed_at: float


def append(conn: Connection, event: Event) -> int:
    """Append ``event`` (chained to its session's previous record) and return its index."""
    return append_many(conn, (event,))[0]


def append_many(conn: Connection, events: Sequence[Event]) -> list[int]:
    """Append ``events`` in order, in the caller's transaction; their indices."""
    if not events:
        return []
    size, compact = _head(conn, lock=True)
    last = _session_heads(conn, {e.session for e in events
                                 if e.session is not None and e.kind != OPENED})
    rows: list[tuple[object, ...]] = []
    hashes: list[bytes] = []
    for index, event in enumerate(events, start=size):
        chained = event.session is not None and event.kind != OPENED
        data = encode(event, prev=last.get(event.session or "") if chained else None)
        digest = tlog.leaf_hash(data)
        hashes.append(digest)
        rows.append((index, data, digest, event.case or None, event.session))
        if event.session is not None:
            last[event.session] = Link(index, digest)
    compact, nodes = compact.extend_nodes(hashes)
    _insert_many(conn, "audit_leaves", _LEAF_COLUMNS, rows)
    _insert_many(conn, "audit_nodes", _NODE_COLUMNS,
                 [(n.level, n.index, n.digest) for n in nodes])
    _set_session_heads(conn, {e.session: last[e.session] for e in events
                              if e.session is not None})
    conn.execute(_SET_HEAD, {"size": compact.size, "compact_range": b"".join(compact.nodes)})
    return list(range(size, size + len(rows)))


def _insert_many(conn: Connection, table: str, columns: tuple[str, ...],
                 rows: list[tuple[object, ...]]) -> None:
    """A driver-level executemany: the log's hot path skips SQLAlchemy's per-row processing."""
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    # Names are this module's constants, never input; values go as parameters.
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"  # noqa: S608
    conn.exec_driver_sql(sql, rows)


def _session_heads(conn: Connection, session_ids: set[str]) -> dict[str, Link]:
    if not session_ids:
        return {}
    rows = conn.execute(_SESSION_HEADS, {"b_ids": sorted(session_ids)})
    return {r.session_id: Link(int(r.leaf_index), bytes(r.leaf_hash)) for r in rows}


def _set_session_heads(conn: Connection, heads: dict[str, Link]) -> None:
    if not heads:
        return
    conn.execute(_DROP_SESSION_HEADS, {"b_ids": sorted(heads)})
    conn.execute(_ADD_SESSION_HEAD, [
        {"session_id": s, "leaf_index": link.index, "leaf_hash": link.leaf_hash}
        for s, link in heads.items()])


def _head(conn: Connection, *, lock: bool = False) -> tuple[int, tlog.CompactRange]:
    row = conn.execute(_HEAD_LOCKED if lock else _HEAD).one()
    raw = bytes(row.compact_range)
    nodes = tuple(raw[i:i + tlog.HASH_SIZE] for i in range(0, len(raw), tlog.HASH_SIZE))
    return int(row.size), tlog.CompactRange(int(row.size), nodes)


def head(conn: Connection) -> tuple[int, bytes]:
    """The log's size and root hash as the head row states them."""
    size, compact = _head(conn)
    return size, compact.root()


def node_reader(conn: Connection) -> tlog.NodeReader:
    """Reads stored perfect subtrees; a missing one raises NotInTree."""
    def read(level: int, index: int) -> bytes:
        digest = conn.execute(_NODE, {"b_level": level, "b_index": index}).scalar()
        if digest is None:
            raise tlog.NotInTree(f"no stored node at level {level}, index {index}")
        return bytes(digest)
    return read


def root_at(conn: Connection, size: int) -> bytes:
    """The root of the first ``size`` leaves, from the stored nodes."""
    return tlog.EMPTY_ROOT if size == 0 else tlog.root_at(node_reader(conn), size)


def inclusion_proof(conn: Connection, index: int, size: int) -> tuple[bytes, ...]:
    return tlog.inclusion_proof_from(node_reader(conn), index, size)


def consistency_proof(conn: Connection, old_size: int, new_size: int) -> tuple[bytes, ...]:
    return tlog.consistency_proof_from(node_reader(conn), old_size, new_size)


def leaves(conn: Connection, *, start: int = 0, end: int | None = None, case_id: str = "",
           session_id: str = "") -> list[Leaf]:
    """Stored leaves, by index; of one case or session when named."""
    query = sa.select(audit_leaves.c.leaf_index, audit_leaves.c.record,
                      audit_leaves.c.leaf_hash).where(audit_leaves.c.leaf_index >= start)
    if end is not None:
        query = query.where(audit_leaves.c.leaf_index < end)
    if case_id:
        query = query.where(audit_leaves.c.case_id == case_id)
    if session_id:
        query = query.where(audit_leaves.c.session_id == session_id)
    rows = conn.execute(query.order_by(audit_leaves.c.leaf_index))
    return [Leaf(int(r.leaf_index), bytes(r.record), bytes(r.leaf_hash)) for r in rows]


def leaf_count(conn: Connection) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(audit_leaves)).scalar_one())


def add_checkpoint(conn: Connection, checkpoint: StoredCheckpoint) -> None:
    conn.execute(audit_checkpoints.insert().values(dataclasses.asdict(checkpoint)
                                                   | {"note": checkpoint.note.decode()}))


def latest_checkpoint(conn: Connection) -> StoredCheckpoint | None:
    row = conn.execute(audit_checkpoints.select()
                       .order_by(audit_checkpoints.c.size.desc()).limit(1)).first()
    return None if row is None else _checkpoint(row)


def checkpoints(conn: Connection) -> Sequence[StoredCheckpoint]:
    rows = conn.execute(audit_checkpoints.select().order_by(audit_checkpoints.c.size))
    return [_checkpoint(r) for r in rows]


def _checkpoint(row: sa.Row[tuple[object, ...]]) -> StoredCheckpoint:
    m = row._mapping
    return StoredCheckpoint(int(m["size"]), bytes(m["root_hash"]), str(m["note"]).encode(),
                            float(m["signed_at"]))
