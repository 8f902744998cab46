"""Completeness: a session's records, and a case's, each form one chain with no gap.

Every record names the index and leaf hash of the previous record of the chain it extends
(``prev``, see :func:`controller.audit.records.extends`): a session's records after
"opened" chain within the session; a case's consent and lock records and its sessions'
"opened" records chain within the case. Walking a chain in index order, each link must
point at the record just before it; a link to a record that is missing from the evidence
makes the evidence incomplete, a link to anything else means a record was removed, changed
or reordered. A case's records written before case chains existed carry no link; they are
taken as they are until the case's first linked record. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from controller.audit.records import (
    CLOSED,
    OPENED,
    OPERATION,
    OUTCOME,
    Chain,
    Event,
    Link,
    extends,
)

INTEGRITY, INCOMPLETE = "integrity", "incomplete"


@dataclass(frozen=True)
class ChainFault:
    """What is wrong with a session's chain, at which leaf; ``severity`` is integrity or incomplete."""

    index: int
    kind: str
    what: str
    severity: str


@dataclass(frozen=True)
class ChainResult:
    sessions: int
    open_sessions: tuple[str, ...]
    faults: tuple[ChainFault, ...]


Item = tuple[int, bytes, Event]  # a record's leaf index, leaf hash and event


def check_sessions(records: Iterable[Item]) -> ChainResult:
    """Check every session's chain among ``(index, leaf hash, event)`` records."""
    by_session: dict[str, list[Item]] = {}
    ordered = sorted(records, key=lambda r: r[0])
    present = {index for index, _, _ in ordered}
    for item in ordered:
        if item[2].session is not None:
            by_session.setdefault(item[2].session, []).append(item)
    faults: list[ChainFault] = []
    still_open = []
    for session, chain in by_session.items():
        faults.extend(_check_session(session, chain, present))
        if all(event.kind != CLOSED for _, _, event in chain):
            still_open.append(session)
    faults.sort(key=lambda f: f.index)
    return ChainResult(len(by_session), tuple(still_open), tuple(faults))


def check_cases(records: Iterable[Item]) -> tuple[ChainFault, ...]:
    """Check every case's chain (consent and lock records, sessions' openings) among
    ``(index, leaf hash, event)`` records."""
    by_case: dict[str, list[Item]] = {}
    ordered = sorted(records, key=lambda r: r[0])
    present = {index for index, _, _ in ordered}
    for item in ordered:
        extended = extends(item[2])
        if extended is not None and extended[0] == "case":
            by_case.setdefault(extended[1], []).append(item)
    faults: list[ChainFault] = []
    for case, chain in by_case.items():
        previous: Link | None = None
        linked = False  # records written before case chains carry no link; they come first
        for index, digest, event in chain:
            from_before_chains = event.prev is None and previous is not None and not linked
            if not from_before_chains:
                fault = _check_link(("case", case), index, event, previous, present)
                if fault is not None:
                    faults.append(fault)
            linked = linked or event.prev is not None
            previous = Link(index, digest)
    return tuple(sorted(faults, key=lambda f: f.index))


def _check_session(session: str, chain: list[Item], present: set[int]) -> list[ChainFault]:
    """``present``: every leaf index in the evidence, whichever session it belongs to."""
    faults = []
    previous: Link | None = None
    for index, digest, event in chain:
        if previous is None and event.kind == OPENED:
            pass  # a session begins here; its link, if any, is its case's (check_cases)
        else:
            fault = _check_link(("session", session), index, event, previous, present)
            if fault is not None:
                faults.append(fault)
        if previous is not None and event.kind == OPENED:
            faults.append(ChainFault(index, event.kind, f"session {session} opened twice",
                                     INTEGRITY))
        previous = Link(index, digest)
    return faults + _check_order(session, chain)


def _check_order(session: str, chain: list[tuple[int, bytes, Event]]) -> list[ChainFault]:
    """Each outcome follows its operation; after "closed" only outcomes of operations that
    were in flight (a revoke closes the session under them) may come."""
    faults, pending, closed = [], set(), False
    for index, _, event in chain:
        ref = event.details.get("event")
        if event.kind == OPERATION:
            pending.add(ref)
        elif event.kind == OUTCOME and ref not in pending:
            faults.append(ChainFault(index, event.kind, f"session {session}: outcome of event "
                                     f"{ref} without its operation record", INTEGRITY))
        pending.discard(ref if event.kind == OUTCOME else None)
        if closed and event.kind != OUTCOME:
            faults.append(ChainFault(index, event.kind, f"session {session} has records "
                                     f"after it was closed", INTEGRITY))
        closed = closed or event.kind == CLOSED
    return faults


def _check_link(chain: Chain, index: int, event: Event, previous: Link | None,
                present: set[int]) -> ChainFault | None:
    """The fault in ``event``'s link, if any: ``previous`` is the chain's record before it
    in the evidence (None: it is the first there)."""
    prev, is_case, label = event.prev, chain[0] == "case", " ".join(chain)
    if previous is None:
        if prev is None and is_case:
            return None  # the case's first record
        if prev is not None and prev.index not in present:
            return ChainFault(index, event.kind, f"{label} starts at leaf {index}; its "
                              f"earlier records (from leaf {prev.index}) are not in the "
                              f"evidence", INCOMPLETE)
        if is_case:
            return ChainFault(index, event.kind, f"{label}: its first record links to leaf "
                              f"{prev.index if prev else 'none'}, which is not the case's",
                              INTEGRITY)
        return ChainFault(index, event.kind, f"{label} does not start with "
                          f"'opened' (its first record links to leaf "
                          f"{'none' if prev is None else prev.index})", INTEGRITY)
    if prev is None:
        return ChainFault(index, event.kind, f"{label}: record has no link to the "
                          f"previous record (leaf {previous.index})", INTEGRITY)
    if prev.index != previous.index:
        return ChainFault(index, event.kind, f"{label}: record links to leaf "
                          f"{prev.index}, but the previous record of the {chain[0]} "
                          f"is leaf {previous.index} (a record was removed or reordered)",
                          INTEGRITY)
    if prev.leaf_hash != previous.leaf_hash:
        return ChainFault(index, event.kind, f"{label}: the link's hash does not "
                          f"match leaf {previous.index} (that record was changed)", INTEGRITY)
    return None
