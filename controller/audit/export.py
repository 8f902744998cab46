"""Collecting evidence from the store, for one case, session, event, or the whole log.

Runs in one read transaction, so records, proofs and the checkpoint agree. Only records the
latest signed checkpoint covers are included: later ones wait for the next checkpoint.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

import tlog
from controller.audit.evidence import Consistency, Evidence, ProvenRecord
from controller.audit.records import decode, sha256_hex
from controller.errors import FailedPrecondition, InvalidArgument, NotFound
from controller.store import auditlog, witness
from controller.store.auditlog import Leaf, StoredCheckpoint
from controller.store.schema import audit_checkpoints, consent_log, session_events


def collect(conn: Connection, scope: dict[str, Any], *, since: bytes | None = None) -> Evidence:
    """Evidence for ``scope`` ({"case"}, {"session"}, {"event"} or {"full": True}).

    ``since``: a signed checkpoint the auditor kept; the evidence then carries it with the
    proof, from this store's nodes, that the log only grew since (the auditor checks it).
    """
    latest = auditlog.latest_checkpoint(conn)
    if latest is None:
        raise FailedPrecondition("the log has no signed checkpoint yet")
    leaves = _leaves(conn, scope, latest.size)
    records = tuple(ProvenRecord(leaf.index, leaf.record,
                                 auditlog.inclusion_proof(conn, leaf.index, latest.size))
                    for leaf in leaves)
    olders = [(old.note, old.size) for old in _first_covering(conn, leaves, latest)]
    if since is not None:
        olders.append((since, _size_of(since)))
    consistency = tuple(Consistency(note, _proof(conn, size, latest.size))
                        for note, size in olders)
    origin = tlog.parse_checkpoint(_body(latest.note)).origin
    cosigned = tuple(Consistency(note, _proof(conn, size, latest.size))
                     for size, note in _cosigned(conn, scope, leaves, latest.size))
    return Evidence(origin, scope, latest.note, records, consistency,
                    _envelopes(conn, leaves), _blobs(leaves), cosigned)


def _cosigned(conn: Connection, scope: dict[str, Any], leaves: list[Leaf],
              size: int) -> list[tuple[int, bytes]]:
    """The latest cosigned checkpoint (up to ``size``) of each agent the records name; of
    every agent for the full log."""
    agents = {str(decode(leaf.record).details.get("agent")) for leaf in leaves}
    latest: dict[str, tuple[int, bytes]] = {}
    for cosigned_size, agent_id, note in witness.cosignatures(conn, at_most=size):
        if scope.get("full") or agent_id in agents:
            latest[agent_id] = (cosigned_size, note)
    return [latest[agent_id] for agent_id in sorted(latest)]


def _size_of(note: bytes) -> int:
    try:
        return tlog.parse_checkpoint(_body(note)).size
    except (tlog.TlogError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"the kept checkpoint does not parse: {exc}") from exc


def _proof(conn: Connection, old_size: int, new_size: int) -> tuple[bytes, ...]:
    if old_size > new_size:
        return ()  # the auditor's verifier reports the shrink
    return auditlog.consistency_proof(conn, old_size, new_size)


def _leaves(conn: Connection, scope: dict[str, Any], size: int) -> list[Leaf]:
    if "event" in scope:
        index = int(scope["event"])
        if not 0 <= index < size:
            raise NotFound(f"no event {index} under the latest checkpoint (size {size})")
        return auditlog.leaves(conn, start=index, end=index + 1)
    found = auditlog.leaves(conn, end=size, case_id=str(scope.get("case", "")),
                            session_id=str(scope.get("session", "")))
    if not found and not scope.get("full"):
        named = " ".join(f"{k} {v}" for k, v in scope.items() if k in ("case", "session") and v)
        raise NotFound(f"no logged events for {named}")
    return found


def _first_covering(conn: Connection, leaves: list[Leaf],
                    latest: StoredCheckpoint) -> list[StoredCheckpoint]:
    """The first checkpoint signed over all of ``leaves``, if older than ``latest``."""
    if not leaves:
        return []
    row = conn.execute(audit_checkpoints.select()
                       .where(audit_checkpoints.c.size > leaves[-1].index)
                       .order_by(audit_checkpoints.c.size).limit(1)).first()
    if row is None or int(row.size) >= latest.size:
        return []
    return [StoredCheckpoint(int(row.size), bytes(row.root_hash), str(row.note).encode(),
                             float(row.signed_at))]


def _envelopes(conn: Connection, leaves: list[Leaf]) -> dict[str, str]:
    """The stored envelopes and receipts whose digests the records carry."""
    wanted = {d for leaf in leaves for d in decode(leaf.record).digests.values()}
    if not wanted:
        return {}
    texts = _consent_envelopes(conn, leaves) + _session_envelopes(conn, leaves)
    return {sha256_hex(t): t for t in texts if sha256_hex(t) in wanted}


def _consent_envelopes(conn: Connection, leaves: list[Leaf]) -> list[str]:
    cases = {decode(leaf.record).case for leaf in leaves}
    rows = conn.execute(sa.select(consent_log.c.envelope).where(
        consent_log.c.case_id.in_(cases), consent_log.c.envelope.is_not(None)))
    return [str(r.envelope) for r in rows]


def _session_envelopes(conn: Connection, leaves: list[Leaf]) -> list[str]:
    ids = {s for s in (decode(leaf.record).session for leaf in leaves) if s is not None}
    rows = conn.execute(sa.select(session_events.c.operation_envelope, session_events.c.receipt)
                        .where(session_events.c.session_id.in_(ids)))
    return [str(t) for r in rows for t in (r.operation_envelope, r.receipt) if t is not None]


def _blobs(leaves: list[Leaf]) -> tuple[str, ...]:
    found = {d for leaf in leaves for name, d in decode(leaf.record).digests.items()
             if name.startswith("blob")}
    return tuple(sorted(found))


def _body(note: bytes) -> str:
    return note.decode().split("\n\n", 1)[0] + "\n"
