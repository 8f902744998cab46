"""Mutual witnessing: the controller checks, mirrors and cosigns an agent's log, and keeps
the agent's cosignatures on its own checkpoints.

An exchange (:func:`witness`) carries the agent's latest signed checkpoint, the entries the
controller has not mirrored yet (a bounded batch) and two RFC 9162 consistency proofs: from
the end of that batch, and from the checkpoint the controller cosigned last, to the new one.
The controller cosigns only when all of it holds:

- the key is the one pinned on the agent's first exchange (recorded in the log, and a
  different key later is refused), and it signed the checkpoint, of the agent's own origin;
- the checkpoint does not go below what was cosigned or mirrored (no replay, no rollback);
- the mirrored entries plus the batch rebuild a tree the checkpoint extends (no changed
  entry), and the checkpoint extends the last one cosigned (no fork).

A refusal names the agent, the sizes and what failed; it is logged, kept on the agent's
state and appended to the log (``witness.refused``) in its own transaction. Sizes that do
not match the controller's (the agent restarted, a reply was lost) are not a refusal: the
answer gives the controller's sizes and the agent sends again from there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy.engine import Connection

import tlog
from controller.audit.errors import AuditError
from controller.audit.records import Event
from controller.store import auditlog
from controller.store import witness as rows

MAX_ENTRIES = 1000
"""Entries one exchange may carry; the agent sends the rest in the next ones."""
MAX_PROOF = 64
KEY_PINNED, REFUSED = "witness.key-pinned", "witness.refused"
# Starts the kept refusal of an exchange the controller could not take at all (a record
# over its limit, too many entries): witnessing is stalled, not contradicted.
EXCHANGE_FAILED = "exchange failed: "


class WitnessRefused(AuditError):
    """An agent's exchange that does not hold; the message pinpoints why (never sent out)."""


@dataclass(frozen=True)
class Exchange:
    """One WitnessRequest, as received (nothing checked yet)."""

    log_key: str
    checkpoint: bytes
    mirrored_size: int
    entries: tuple[bytes, ...]
    entries_proof: tuple[bytes, ...]
    cosigned_size: int
    cosigned_proof: tuple[bytes, ...]


@dataclass(frozen=True)
class Witnessed:
    """The controller's answer: its sizes, and the cosigned checkpoint when accepted."""

    accepted: bool
    mirrored_size: int
    cosigned_size: int
    cosigned: bytes = b""


def agent_origin(agent_id: str, trust_domain: str) -> str:
    """The origin an agent's checkpoints must name (the agent's log says the same)."""
    return f"{agent_id}.agent.{trust_domain}/log"


def witness(conn: Connection, agent_id: str, exchange: Exchange, origin: str,
            signer: tlog.NoteSigner, now: float) -> Witnessed:
    """Check ``exchange`` against what is held of ``agent_id``'s log; mirror and cosign it."""
    key = _key(exchange.log_key, origin)
    signed = _open(exchange.checkpoint, key, agent_id)  # a key is pinned only with its signature
    state = rows.get_state(conn, agent_id, lock=True)
    if state is None:
        state = rows.pin(conn, agent_id, key.vkey(), now)
        auditlog.append(conn, Event(KEY_PINNED, now, "", "controller", details={
            "agent": agent_id, "log_key": key.vkey()}))
    elif state.log_key != key.vkey():
        raise WitnessRefused(f"agent {agent_id} presented log key {key.vkey()}, but "
                             f"{state.log_key} is pinned: the agent's log key changed")
    if (exchange.mirrored_size, exchange.cosigned_size) != (state.mirrored_size,
                                                             state.cosigned_size):
        return Witnessed(False, state.mirrored_size, state.cosigned_size)
    new = signed.checkpoint
    _not_below(agent_id, new, state)
    if state.cosigned_size:
        try:
            tlog.verify_consistency(old_size=state.cosigned_size, new_size=new.size,
                                    old_root=state.cosigned_root, new_root=new.root_hash,
                                    proof=exchange.cosigned_proof)
        except tlog.TlogError as exc:
            raise WitnessRefused(
                f"agent {agent_id}'s checkpoint of size {new.size} (root "
                f"{new.root_hash.hex()}) does not extend the checkpoint of size "
                f"{state.cosigned_size} cosigned before (root {state.cosigned_root.hex()}): "
                f"its history was rewritten (fork): {exc}") from exc
    grown = _rebuild(agent_id, exchange, state, new)
    cosigned = tlog.cosign(signed.note.note, [signer]).encode()
    rows.advance(conn, agent_id, start=state.mirrored_size, records=exchange.entries,
                 grown=grown, cosigned=new, note=cosigned, now=now)
    return Witnessed(True, grown.size, new.size, cosigned)


def refused(conn: Connection, agent_id: str, reason: str, now: float) -> None:
    """Keep a refusal on the agent's state and in the log (its own transaction); the same
    refusal again, round after round, is logged once until an exchange is accepted."""
    state = rows.get_state(conn, agent_id)
    rows.note_refusal(conn, agent_id, reason, now)
    if state is None or state.last_refusal != reason:
        auditlog.append(conn, Event(REFUSED, now, "", "controller", details={
            "agent": agent_id, "reason": reason}))


def cosigned_by_agent(conn: Connection, agent_id: str, note: bytes,
                      controller: tlog.NoteVerifier, now: float) -> int:
    """Keep an agent's cosignature on one of the controller's checkpoints; its size.

    The note must be a checkpoint this controller signed (same text as the stored one) with
    a valid signature by the agent's pinned log key.
    """
    state = rows.get_state(conn, agent_id)
    if state is None:
        raise WitnessRefused(f"agent {agent_id} cosigned before any exchange pinned its key")
    agent_key = tlog.parse_verifier_key(state.log_key)
    try:
        signed = tlog.open_checkpoint(note, [controller, agent_key], origin=controller.name,
                                      quorum=2)
    except tlog.TlogError as exc:
        raise WitnessRefused(f"agent {agent_id}'s cosignature does not verify with its pinned "
                             f"key and this controller's: {exc}") from exc
    size = signed.checkpoint.size
    stored = [c for c in auditlog.checkpoints(conn) if c.size == size]
    if not stored or stored[0].root_hash != signed.checkpoint.root_hash:
        raise WitnessRefused(f"agent {agent_id} cosigned a checkpoint of size {size} that "
                             f"this controller never signed")
    rows.add_cosignature(conn, size, agent_id, note, now)
    return size


def controller_view(conn: Connection, since: int) -> tuple[bytes, tuple[bytes, ...]]:
    """The controller's latest checkpoint and the consistency proof to it from ``since``."""
    latest = auditlog.latest_checkpoint(conn)
    if latest is None:
        return b"", ()
    if since > latest.size:  # the agent saw more: it reports the rollback itself
        return latest.note, ()
    return latest.note, auditlog.consistency_proof(conn, since, latest.size)


def _key(vkey: str, origin: str) -> tlog.NoteVerifier:
    try:
        key = tlog.parse_verifier_key(vkey)
    except tlog.TlogError as exc:
        raise WitnessRefused(f"the log key is not a verifier key: {exc}") from exc
    if key.name != origin:
        raise WitnessRefused(f"the log key is named {key.name!r}, the agent's log is {origin!r}")
    return key


def _open(note: bytes, key: tlog.NoteVerifier, agent_id: str) -> tlog.SignedCheckpoint:
    try:
        return tlog.open_checkpoint(note, [key], origin=key.name)
    except tlog.TlogError as exc:
        raise WitnessRefused(f"agent {agent_id}'s checkpoint is not signed by the log key it "
                             f"presented ({key.vkey()}): {exc}") from exc


def _not_below(agent_id: str, new: tlog.Checkpoint, state: rows.WitnessState) -> None:
    if new.size < state.cosigned_size:
        raise WitnessRefused(
            f"agent {agent_id} sent a checkpoint of size {new.size}, below the size "
            f"{state.cosigned_size} already cosigned: a replayed old checkpoint or a "
            f"rolled-back log")
    if new.size < state.mirrored_size:
        raise WitnessRefused(f"agent {agent_id} sent a checkpoint of size {new.size}, below "
                             f"the {state.mirrored_size} entries mirrored: its log was "
                             f"truncated")


def _rebuild(agent_id: str, exchange: Exchange, state: rows.WitnessState,
             new: tlog.Checkpoint) -> tlog.CompactRange:
    """The mirrored tree grown by the batch, proven to lead to ``new``."""
    start, end = state.mirrored_size, state.mirrored_size + len(exchange.entries)
    if end > new.size:
        raise WitnessRefused(f"agent {agent_id} sent entries up to {end}, beyond its "
                             f"checkpoint's size {new.size}")
    for index, record in enumerate(exchange.entries, start=start + 1):
        _check_record(agent_id, index, record)
    grown = state.compact_range.extend(tlog.leaf_hash(r) for r in exchange.entries)
    try:
        tlog.verify_consistency(old_size=end, new_size=new.size, old_root=grown.root(),
                                new_root=new.root_hash, proof=exchange.entries_proof)
    except tlog.TlogError as exc:
        where = f"entries {start + 1}..{end}" if end > start else "the mirrored entries"
        raise WitnessRefused(
            f"agent {agent_id}'s {where} do not rebuild a tree its checkpoint of size "
            f"{new.size} extends: an entry was changed, or history rewritten after entry "
            f"{start}: {exc}") from exc
    return grown


def _check_record(agent_id: str, index: int, record: bytes) -> None:
    try:
        obj = json.loads(record)
    except ValueError as exc:
        raise WitnessRefused(f"agent {agent_id}'s entry {index} is not a JSON record") from exc
    if not isinstance(obj, dict) or obj.get("id") != index:
        found = obj.get("id") if isinstance(obj, dict) else None
        raise WitnessRefused(f"agent {agent_id}'s entry {index} names index {found!r}: "
                             f"entries are missing or out of order")
