"""Session completeness: a session's records form one chain, opened … closed, with no gap.

Every session record after "opened" names the index and leaf hash of the session's previous
record (``prev``). Walking them in index order, each link must point at the record just
before it; a link to a record that is missing from the evidence makes the evidence
incomplete, a link to anything else means a record was removed, changed or reordered.
Pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from controller.audit.records import CLOSED, OPENED, OPERATION, OUTCOME, Event, Link

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


def check_sessions(records: Iterable[tuple[int, bytes, Event]]) -> ChainResult:
    """Check every session's chain among ``(index, leaf hash, event)`` records."""
    by_session: dict[str, list[tuple[int, bytes, Event]]] = {}
    ordered = sorted(records, key=lambda r: r[0])
    present = {index for index, _, _ in ordered}
    for item in ordered:
        if item[2].session is not None:
            by_session.setdefault(item[2].session, []).append(item)
    faults: list[ChainFault] = []
    still_open = []
    for session, chain in by_session.items():
        faults.extend(_check_chain(session, chain, present))
        if all(event.kind != CLOSED for _, _, event in chain):
            still_open.append(session)
    faults.sort(key=lambda f: f.index)
    return ChainResult(len(by_session), tuple(still_open), tuple(faults))


def _check_chain(session: str, chain: list[tuple[int, bytes, Event]],
                 present: set[int]) -> list[ChainFault]:
    """``present``: every leaf index in the evidence, whichever session it belongs to."""
    faults = []
    previous: Link | None = None
    for index, _digest, event in chain:
        fault = _check_link(session, index, event, previous, present)
        if fault is not None:
            faults.append(fault)
        if previous is not None and event.kind == OPENED:
            faults.append(ChainFault(index, event.kind, f"session {session} opened twice",
                                     INTEGRITY))
        previous = Link(index, _digest)
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


def _check_link(session: str, index: int, event: Event, previous: Link | None,
                present: set[int]) -> ChainFault | None:
    prev = event.prev
    if previous is None:
        if event.kind == OPENED and prev is None:
            return None
        if prev is not None and prev.index not in present:
            return ChainFault(index, event.kind, f"session {session} starts at leaf {index}; "
                              f"its earlier records (from leaf {prev.index}) are not in the "
                              f"evidence", INCOMPLETE)
        return ChainFault(index, event.kind, f"session {session} does not start with "
                          f"'opened' (its first record links to leaf "
                          f"{'none' if prev is None else prev.index})", INTEGRITY)
    if prev is None:
        return ChainFault(index, event.kind, f"session {session}: record has no link to the "
                          f"previous record (leaf {previous.index})", INTEGRITY)
    if prev.index != previous.index:
        return ChainFault(index, event.kind, f"session {session}: record links to leaf "
                          f"{prev.index}, but the previous record of the session is leaf "
                          f"{previous.index} (a record was removed or reordered)", INTEGRITY)
    if prev.leaf_hash != previous.leaf_hash:
        return ChainFault(index, event.kind, f"session {session}: the link's hash does not "
                          f"match leaf {previous.index} (that record was changed)", INTEGRITY)
    return None
