"""Rows of mutual witnessing: each agent's witness state, its mirrored log entries, and the
agents' cosignatures on the controller's checkpoints (see :mod:`controller.audit.witness`).

Every function runs inside the caller's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

import tlog
from controller.store.schema import audit_cosignatures, witness_entries, witness_state


@dataclass(frozen=True)
class WitnessState:
    """What the controller holds of one agent's log."""

    agent_id: str
    log_key: str
    pinned_at: float
    mirrored_size: int
    compact_range: tlog.CompactRange
    cosigned_size: int
    cosigned_root: bytes
    checkpoint: bytes | None
    witnessed_at: float | None
    last_refusal: str
    refused_at: float | None


@dataclass(frozen=True)
class MirroredEntry:
    """One entry of an agent's log as mirrored: its index (from 1) and its parsed record."""

    index: int
    record: dict[str, object]


def get_state(conn: Connection, agent_id: str, *, lock: bool = False) -> WitnessState | None:
    query = witness_state.select().where(witness_state.c.agent_id == agent_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        return None
    m = row._mapping
    raw = bytes(m["compact_range"])
    nodes = tuple(raw[i:i + tlog.HASH_SIZE] for i in range(0, len(raw), tlog.HASH_SIZE))
    return WitnessState(
        m["agent_id"], m["log_key"], float(m["pinned_at"]), int(m["mirrored_size"]),
        tlog.CompactRange(int(m["mirrored_size"]), nodes), int(m["cosigned_size"]),
        bytes(m["cosigned_root"]), None if m["checkpoint"] is None else str(m["checkpoint"]).encode(),
        None if m["witnessed_at"] is None else float(m["witnessed_at"]), str(m["last_refusal"]),
        None if m["refused_at"] is None else float(m["refused_at"]))


def pin(conn: Connection, agent_id: str, log_key: str, now: float) -> WitnessState:
    """The first state of an agent: its key pinned, nothing mirrored or cosigned."""
    conn.execute(witness_state.insert().values(
        agent_id=agent_id, log_key=log_key, pinned_at=now, mirrored_size=0, compact_range=b"",
        cosigned_size=0, cosigned_root=tlog.EMPTY_ROOT, checkpoint=None, witnessed_at=None,
        last_refusal="", refused_at=None))
    state = get_state(conn, agent_id)
    assert state is not None, "the state was just inserted"
    return state


def advance(conn: Connection, agent_id: str, *, start: int, records: Sequence[bytes],
            grown: tlog.CompactRange, cosigned: tlog.Checkpoint, note: bytes,
            now: float) -> None:
    """Mirror ``records`` (entries start+1 …) and move the state to ``cosigned``."""
    if records:
        conn.execute(witness_entries.insert(), [
            {"agent_id": agent_id, "entry_index": start + i, "record": record,
             "session_id": _session_of(record)}
            for i, record in enumerate(records, start=1)])
    conn.execute(witness_state.update().where(witness_state.c.agent_id == agent_id).values(
        mirrored_size=grown.size, compact_range=b"".join(grown.nodes),
        cosigned_size=cosigned.size, cosigned_root=cosigned.root_hash,
        checkpoint=note.decode(), witnessed_at=now, last_refusal="", refused_at=None))


def note_refusal(conn: Connection, agent_id: str, reason: str, now: float) -> bool:
    """Keep the last refusal on the agent's state; whether the agent has one."""
    done = conn.execute(witness_state.update().where(witness_state.c.agent_id == agent_id)
                        .values(last_refusal=reason, refused_at=now))
    return bool(done.rowcount)


def entries(conn: Connection, agent_id: str) -> list[MirroredEntry]:
    rows = conn.execute(sa.select(witness_entries.c.entry_index, witness_entries.c.record)
                        .where(witness_entries.c.agent_id == agent_id)
                        .order_by(witness_entries.c.entry_index))
    return [MirroredEntry(int(r.entry_index), json.loads(bytes(r.record))) for r in rows]


def add_cosignature(conn: Connection, size: int, witness: str, note: bytes, now: float) -> None:
    """Keep ``witness``'s cosigned note of the controller's checkpoint of ``size``."""
    conn.execute(audit_cosignatures.delete().where(audit_cosignatures.c.size == size,
                                                   audit_cosignatures.c.witness == witness))
    conn.execute(audit_cosignatures.insert().values(size=size, witness=witness,
                                                    note=note.decode(), signed_at=now))


def cosignatures(conn: Connection, *, size: int | None = None,
                 at_most: int | None = None) -> list[tuple[int, str, bytes]]:
    """``(size, witness, note)`` of the cosignatures kept, of one size or up to one."""
    query = sa.select(audit_cosignatures.c.size, audit_cosignatures.c.witness,
                      audit_cosignatures.c.note)
    if size is not None:
        query = query.where(audit_cosignatures.c.size == size)
    if at_most is not None:
        query = query.where(audit_cosignatures.c.size <= at_most)
    rows = conn.execute(query.order_by(audit_cosignatures.c.size, audit_cosignatures.c.witness))
    return [(int(r.size), str(r.witness), str(r.note).encode()) for r in rows]


def _session_of(record: bytes) -> str | None:
    try:
        value = json.loads(record).get("session_id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and len(value) <= 64 else None
