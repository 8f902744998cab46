"""Session completeness: the chain of a session's records has no gap."""

from __future__ import annotations

import tlog
from controller.audit.chains import INCOMPLETE, INTEGRITY, check_sessions
from controller.audit.records import Event, decode
from tests.unit.controller.audit._log import MemoryLog, consent, session


def _items(log: MemoryLog, indices: list[int] | None = None) -> list[tuple[int, bytes, Event]]:
    chosen = range(len(log.records)) if indices is None else indices
    return [(i, tlog.leaf_hash(log.records[i]), decode(log.records[i])) for i in chosen]


def test_complete_sessions_pass_and_open_ones_are_named() -> None:
    log = MemoryLog()
    consent(log)
    session(log, "S-1")
    session(log, "S-2", close=False)
    result = check_sessions(_items(log))
    assert (result.sessions, result.open_sessions, result.faults) == (2, ("S-2",), ())


def test_interleaved_sessions_chain_separately() -> None:
    log = MemoryLog()
    first = session(log, "S-1", close=False)
    second = session(log, "S-2")
    log.append(Event("session.closed", 5.0, "C-0001", "controller", "S-1",
                     {"reason": "closed"}))
    assert check_sessions(_items(log)).faults == ()
    link = decode(log.records[-1]).prev
    assert link is not None and link.index == first[-1] and link.index < second[0]


def test_a_removed_record_is_pinpointed_at_the_record_after_it() -> None:
    log = MemoryLog()
    indices = session(log, "S-1", ops=3)
    removed = indices[3]
    faults = check_sessions(_items(log, [i for i in indices if i != removed])).faults
    assert faults and faults[0].index == indices[4] and faults[0].severity == INTEGRITY
    assert f"links to leaf {removed}" in faults[0].what


def test_a_missing_opening_is_incomplete_when_not_in_the_evidence() -> None:
    log = MemoryLog()
    indices = session(log, "S-1")
    faults = check_sessions(_items(log, indices[1:])).faults
    assert [(f.index, f.severity) for f in faults] == [(indices[1], INCOMPLETE)]


def test_a_changed_predecessor_breaks_the_link_hash() -> None:
    log = MemoryLog()
    indices = session(log, "S-1")
    items = _items(log)
    index, _, event = items[indices[2]]
    items[indices[2]] = (index, b"\x00" * 32, event)
    faults = check_sessions(items).faults
    assert faults[0].index == indices[3] and "was changed" in faults[0].what


def test_records_after_close_and_orphan_outcomes_are_faults() -> None:
    log = MemoryLog()
    session(log, "S-1", ops=1)
    log.append(Event("session.operation", 9.0, "C-0001", "alice", "S-1", {"event": 7}))
    log.append(Event("session.outcome", 9.5, "C-0001", "alice", "S-1", {"event": 8}))
    whats = [f.what for f in check_sessions(_items(log)).faults]
    assert any("after it was closed" in w for w in whats)
    assert any("outcome of event 8 without its operation" in w for w in whats)


def test_an_in_flight_outcome_may_follow_a_revoke_close() -> None:
    log = MemoryLog()
    log.append(Event("session.opened", 1.0, "C-0001", "alice", "S-1"))
    log.append(Event("session.operation", 2.0, "C-0001", "alice", "S-1", {"event": 1}))
    log.append(Event("session.closed", 3.0, "C-0001", "controller", "S-1", {"reason": "revoked"}))
    log.append(Event("session.outcome", 4.0, "C-0001", "alice", "S-1", {"event": 1}))
    assert check_sessions(_items(log)).faults == ()
