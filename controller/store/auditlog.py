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
from controller.audit.errors import ChainBroken
from controller.audit.records import Chain, Event, Link, encode, extends, heads
from controller.store import driver
from controller.store.schema import (
    audit_checkpoints,
    audit_leaves,
    audit_nodes,
)

# The append path's statements run at the driver (see controller.store.driver): an
# operation appends two records, and Core's overhead per statement was most of their cost.
_INSERT_LEAVES = ("INSERT INTO audit_leaves (leaf_index, record, leaf_hash, case_id, "
                  "session_id) VALUES (?, ?, ?, ?, ?)")
_INSERT_NODES = "INSERT INTO audit_nodes (level, node_index, digest) VALUES (?, ?, ?)"
_HEAD_SQL = "SELECT size, compact_range FROM audit_head WHERE head_id = 1"
_SET_HEAD_SQL = "UPDATE audit_head SET size = ?, compact_range = ? WHERE head_id = 1"
# Each head with the hash of the leaf it names and the chain's newest leaf in the log, so a
# head altered in the database (pointing elsewhere, or back) is caught before a record links
# to it: that record would hide or fork the chain.
_SESSION_HEADS_SQL = (
    "SELECT h.session_id, h.leaf_index, h.leaf_hash, l.leaf_hash, "
    "(SELECT max(m.leaf_index) FROM audit_leaves m WHERE m.session_id = h.session_id) "
    "FROM audit_session_heads h LEFT JOIN audit_leaves l ON l.leaf_index = h.leaf_index "
    "WHERE h.session_id IN ({})")
# SQLite (3.24+) and PostgreSQL both write an upsert this way.
_SET_SESSION_HEAD = ("INSERT INTO audit_session_heads (session_id, leaf_index, leaf_hash) "
                     "VALUES (?, ?, ?) ON CONFLICT (session_id) DO UPDATE SET "
                     "leaf_index = excluded.leaf_index, leaf_hash = excluded.leaf_hash")
# A case's chain: its records outside sessions and each session's first ("opened").
_CASE_HEADS_SQL = (
    "SELECT h.case_id, h.leaf_index, h.leaf_hash, l.leaf_hash, "
    "(SELECT max(m.leaf_index) FROM audit_leaves m WHERE m.case_id = h.case_id AND "
    "(m.session_id IS NULL OR m.leaf_index IN (SELECT min(o.leaf_index) FROM audit_leaves o "
    "WHERE o.case_id = h.case_id AND o.session_id IS NOT NULL GROUP BY o.session_id))) "
    "FROM audit_case_heads h LEFT JOIN audit_leaves l ON l.leaf_index = h.leaf_index "
    "WHERE h.case_id IN ({})")
_HAS_LEAVES = {"session": "SELECT 1 FROM audit_leaves WHERE session_id = ? LIMIT 1",
               "case": "SELECT 1 FROM audit_leaves WHERE case_id = ? LIMIT 1"}
_SET_CASE_HEAD = ("INSERT INTO audit_case_heads (case_id, leaf_index, leaf_hash) "
                  "VALUES (?, ?, ?) ON CONFLICT (case_id) DO UPDATE SET "
                  "leaf_index = excluded.leaf_index, leaf_hash = excluded.leaf_hash")
_HEADS = {"session": (_SESSION_HEADS_SQL, _SET_SESSION_HEAD),
          "case": (_CASE_HEADS_SQL, _SET_CASE_HEAD)}
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
    """Append ``event`` (linked to the last record of the chain it extends) and return its
    index."""
    return append_many(conn, (event,))[0]


def append_many(conn: Connection, events: Sequence[Event]) -> list[int]:
    """Append ``events`` in order, in the caller's transaction; their indices."""
    if not events:
        return []
    size, compact = _head(conn, lock=True)
    last = _chain_heads(conn, {c for e in events if (c := extends(e)) is not None})
    rows: list[tuple[object, ...]] = []
    hashes: list[bytes] = []
    moved: dict[Chain, Link] = {}
    for index, event in enumerate(events, start=size):
        chain = extends(event)
        if chain is not None and chain not in last:
            _check_first(conn, chain)
        data = encode(event, prev=None if chain is None else last.get(chain))
        digest = tlog.leaf_hash(data)
        hashes.append(digest)
        rows.append((index, data, digest, event.case or None, event.session))
        for head in heads(event):
            last[head] = moved[head] = Link(index, digest)
    compact, nodes = compact.extend_nodes(hashes)
    driver.executemany(conn, _INSERT_LEAVES, rows)
    driver.executemany(conn, _INSERT_NODES, [(n.level, n.index, n.digest) for n in nodes])
    for kind, (_, upsert) in _HEADS.items():
        driver.executemany(conn, upsert, [(key, link.index, link.leaf_hash)
                                          for (k, key), link in sorted(moved.items())
                                          if k == kind])
    driver.execute(conn, _SET_HEAD_SQL, (compact.size, b"".join(compact.nodes)))
    return list(range(size, size + len(rows)))


def _chain_heads(conn: Connection, chains: set[Chain]) -> dict[Chain, Link]:
    """The last record of each of ``chains`` that has one; ChainBroken if a head does not
    name a leaf of the log as it was recorded."""
    found: dict[Chain, Link] = {}
    for kind, (select, _) in _HEADS.items():
        keys = sorted(key for k, key in chains if k == kind)
        if not keys:
            continue
        sql = select.format(driver.placeholders(len(keys)))
        for key, index, head_hash, leaf_hash, newest in driver.rows(conn, sql, keys):
            if leaf_hash is None or bytes(leaf_hash) != bytes(head_hash) or newest != index:
                raise ChainBroken(f"the log's last record of {kind} {key} is recorded as leaf "
                                  f"{index}, which is not that record as the log holds it "
                                  f"(its newest is leaf {newest}): the database was altered; "
                                  f"nothing is appended")
            found[(kind, str(key))] = Link(int(index), bytes(head_hash))
    return found


def _check_first(conn: Connection, chain: Chain) -> None:
    """A record that begins its chain: ChainBroken if the chain has records already (its
    head row is gone), or the record would begin a second chain that hides the first."""
    kind, key = chain
    if driver.rows(conn, _HAS_LEAVES[kind], (key,)):
        raise ChainBroken(f"the log holds records of {kind} {key} but no last record for it: "
                          f"the database was altered; nothing is appended")


def _head(conn: Connection, *, lock: bool = False) -> tuple[int, tlog.CompactRange]:
    locked = lock and conn.dialect.name != "sqlite"
    [(size, raw)] = driver.rows(conn, _HEAD_SQL + (" FOR UPDATE" if locked else ""))
    size, raw = int(size), bytes(raw)
    nodes = tuple(raw[i:i + tlog.HASH_SIZE] for i in range(0, len(raw), tlog.HASH_SIZE))
    return size, tlog.CompactRange(size, nodes)


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
