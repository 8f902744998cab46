"""Verifying evidence against the log's pinned public key. Pure: no I/O, no clock.

Checks, in order: the checkpoint's signature and origin; every record's canonical form and
its inclusion at its index in the signed tree; that the full log's records are all there;
that the records are of the scope's case or session; each session's chain, and each case's
for a case's evidence or the full log's (see :mod:`controller.audit.chains`); every older
checkpoint's consistency with the newer one; the envelopes against the digests the records
carry, each one named there present; and, for each agent log key the auditor pinned, a
cosignature by it on a checkpoint the evidence's checkpoint extends.
The report lists every fault found, in leaf order; the first one pinpoints where to look.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import tlog
from controller.audit.chains import INCOMPLETE, INTEGRITY, Item, check_cases, check_sessions
from controller.audit.errors import BadRecord
from controller.audit.evidence import Evidence, ProvenRecord, scope_problem
from controller.audit.records import decode, sha256_hex

VERIFIED, FAILED = "verified", "failed"


@dataclass(frozen=True)
class Fault:
    """One thing that does not hold: at which leaf (None: not a leaf), of which kind, what."""

    index: int | None
    kind: str
    what: str
    severity: str = INTEGRITY


@dataclass(frozen=True)
class Report:
    status: str  # verified, failed (integrity) or incomplete
    size: int
    root_hash: bytes
    records: int
    sessions: int
    open_sessions: tuple[str, ...]
    consistency: int
    envelopes: int
    faults: tuple[Fault, ...]
    cosigned_by: tuple[str, ...] = ()  # the pinned agent keys whose cosignatures verified


def verify_evidence(evidence: Evidence, key: tlog.NoteVerifier,
                    agent_keys: Sequence[tlog.NoteVerifier] = ()) -> Report:
    """Check ``evidence`` trusting only ``key`` (and ``agent_keys`` for cosignatures);
    never raises for bad evidence."""
    try:
        signed = tlog.open_checkpoint(evidence.checkpoint, [key], origin=key.name).checkpoint
    except tlog.TlogError as exc:
        fault = Fault(None, "checkpoint", f"the checkpoint is not signed by the pinned log key "
                      f"{key.name}: {exc}")
        return Report(FAILED, 0, b"", 0, 0, (), 0, 0, (fault,))
    faults: list[Fault] = []
    problem = scope_problem(evidence.scope)
    if problem is not None:
        faults.append(Fault(None, "scope", problem))
    events = _records(evidence.records, signed, faults)
    if evidence.scope.get("full") is True:
        faults.extend(_missing(evidence.records, signed.size))
    sessions, still_open = 0, tuple[str, ...]()
    if "event" in evidence.scope:
        faults.extend(_one_event(evidence))
    else:
        faults.extend(_outside_scope(evidence.scope, events))
        chains = check_sessions(events)
        sessions, still_open = chains.sessions, chains.open_sessions
        faults.extend(Fault(f.index, f.kind, f.what, f.severity) for f in chains.faults)
        if "case" in evidence.scope or evidence.scope.get("full") is True:
            faults.extend(Fault(f.index, f.kind, f.what, f.severity)
                          for f in check_cases(events))
    faults.extend(_consistency(evidence, signed, key))
    faults.extend(_envelopes(evidence, events))
    cosigned_by = _cosignatures(evidence, signed, key, agent_keys, faults)
    faults.sort(key=lambda f: (f.index is None, f.index or 0))
    return Report(_status(faults), signed.size, signed.root_hash, len(events), sessions,
                  still_open, len(evidence.consistency), len(evidence.envelopes), tuple(faults),
                  cosigned_by)


def _one_event(evidence: Evidence) -> list[Fault]:
    """A proof of one event holds that event alone. The scope is not signed: a case's
    evidence cut short and relabelled as an event's must not skip the session checks."""
    wanted = evidence.scope.get("event")
    indexes = [r.index for r in evidence.records]
    if isinstance(wanted, int) and not isinstance(wanted, bool) and indexes == [wanted]:
        return []
    return [Fault(None, "scope", f"the evidence is scoped to event {wanted!r} but holds "
                  f"{len(indexes)} record(s): a proof of one event holds that one alone")]


def _outside_scope(scope: dict[str, object], events: list[Item],
                   ) -> list[Fault]:
    """A case's or a session's evidence holds that case's or session's records alone: the
    scope is not signed, and it decides which chains are checked (the client also checks
    that the scope is the one it asked for, :func:`controller.client.audit.check`)."""
    faults = []
    for index, _, event in events:
        if "case" in scope and event.case != scope["case"]:
            faults.append(Fault(index, event.kind, f"the evidence is of case {scope['case']!r}"
                                f" but this record is of case {event.case!r}"))
        elif "session" in scope and event.session != scope["session"]:
            faults.append(Fault(index, event.kind, f"the evidence is of session "
                                f"{scope['session']!r} but this record is of "
                                f"{'no session' if event.session is None else event.session}"))
    return faults


def _cosignatures(evidence: Evidence, signed: tlog.Checkpoint, key: tlog.NoteVerifier,
                  agent_keys: Sequence[tlog.NoteVerifier], faults: list[Fault]) -> tuple[str, ...]:
    """Which pinned agent keys cosigned a checkpoint this log's checkpoint extends.

    Only pinned keys count: a signature line by any other key is ignored, whatever it
    claims. Each cosigned checkpoint must itself be signed by the log key and proven
    consistent with the evidence's checkpoint, and it counts only if it covers every
    record of the evidence: a witness to an older, shorter log vouches for none of the
    records added since.
    """
    found: set[str] = set()
    last = max((r.index for r in evidence.records), default=-1)
    for item in evidence.cosigned:
        try:
            old = tlog.open_checkpoint(item.checkpoint, [key], origin=key.name).checkpoint
            tlog.verify_extends(old, signed, item.proof)
        except tlog.TlogError as exc:
            faults.append(Fault(None, "cosignature", f"a cosigned checkpoint is not this "
                                f"log's, or not consistent with its checkpoint: {exc}"))
            continue
        if old.size <= last:
            continue  # does not reach the evidence's last record
        for agent in agent_keys:
            if agent.public_key == key.public_key:
                continue  # the log's own signature is no witness's (reported below)
            try:
                tlog.open_note(item.checkpoint, [agent])
            except tlog.UnverifiedNote:
                continue  # not cosigned by this agent
            except tlog.TlogError as exc:
                faults.append(Fault(None, "cosignature", f"the cosignature by {agent.name} on "
                                    f"the checkpoint of size {old.size} does not verify "
                                    f"(forged or altered): {exc}"))
                continue
            found.add(agent.vkey())
    for agent in agent_keys:
        if agent.vkey() not in found:
            faults.append(Fault(None, "cosignature", f"no valid cosignature by the pinned "
                                f"agent key {agent.name} on a checkpoint that covers every "
                                f"record of the evidence", INCOMPLETE))
    return tuple(sorted(found))


def _status(faults: list[Fault]) -> str:
    if any(f.severity == INTEGRITY for f in faults):
        return FAILED
    return INCOMPLETE if faults else VERIFIED


def _records(records: tuple[ProvenRecord, ...], signed: tlog.Checkpoint,
             faults: list[Fault]) -> list[Item]:
    """The records that are canonical and included at their index; faults for the others."""
    good, seen = [], set()
    for item in sorted(records, key=lambda r: r.index):
        if item.index in seen:
            faults.append(Fault(item.index, "?", "two records claim this index"))
            continue
        seen.add(item.index)
        digest = tlog.leaf_hash(item.record)
        try:
            event = decode(item.record)
        except BadRecord as exc:
            faults.append(Fault(item.index, "?", f"not a canonical record: {exc}"))
            continue
        try:
            tlog.verify_inclusion(digest, index=item.index, size=signed.size, proof=item.proof,
                                  root=signed.root_hash)
        except tlog.InclusionNotProven as exc:
            faults.append(Fault(item.index, event.kind, f"this record is not leaf {item.index} "
                                f"of the signed tree (size {signed.size}): it was changed, "
                                f"moved or inserted ({exc})"))
            continue
        good.append((item.index, digest, event))
    return good


def _missing(records: tuple[ProvenRecord, ...], size: int) -> list[Fault]:
    present = {r.index for r in records}
    gaps = [i for i in range(size) if i not in present]
    if not gaps:
        return []
    return [Fault(gaps[0], "?", f"{len(gaps)} of the {size} records the checkpoint covers are "
                  f"missing, the first at leaf {gaps[0]} (deleted or truncated)")]


def _consistency(evidence: Evidence, signed: tlog.Checkpoint,
                 key: tlog.NoteVerifier) -> list[Fault]:
    faults = []
    for item in evidence.consistency:
        try:
            old = tlog.open_checkpoint(item.checkpoint, [key], origin=key.name).checkpoint
            tlog.verify_extends(old, signed, item.proof)
        except tlog.SignatureRejected as exc:
            faults.append(Fault(None, "checkpoint", f"an older checkpoint is not signed by the "
                                f"pinned key: {exc}"))
        except tlog.TlogError as exc:
            faults.append(Fault(None, "checkpoint", f"the log did not only grow since an older "
                                f"checkpoint (history rewritten): {exc}"))
    return faults


def _envelopes(evidence: Evidence, events: list[Item]) -> list[Fault]:
    """Each envelope hashes to its digest and is named by a verified record; each envelope
    a record names is there (blobs, kept outside the evidence, excepted)."""
    referenced = {d for _, _, e in events for d in e.digests.values()}
    faults = []
    for digest, text in sorted(evidence.envelopes.items()):
        if sha256_hex(text) != digest:
            faults.append(Fault(None, "envelope", f"envelope {digest[:16]}… does not hash to "
                                f"its digest (edited)"))
        elif digest not in referenced:
            faults.append(Fault(None, "envelope", f"envelope {digest[:16]}… is referenced by no "
                                f"verified record", INCOMPLETE))
    for index, _, event in events:
        for name, digest in sorted(event.digests.items()):
            if not name.startswith("blob") and digest not in evidence.envelopes:
                faults.append(Fault(index, event.kind, f"the {name} {digest[:16]}… this record "
                                    f"names is not in the evidence", INCOMPLETE))
    return faults
