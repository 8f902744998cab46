"""Completeness: the chain of a session's records, and of a case's, has no gap."""

from __future__ import annotations

import pytest

import tlog
from controller.audit.chains import INCOMPLETE, INTEGRITY, check_cases, check_sessions
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


# -- a case's chain: consent and lock records, sessions' openings ---------------------------


def _case_story(log: MemoryLog) -> dict[str, int]:
    """A request, its approval, a session, a lock, a second session, the revocation."""
    marks = {"requested": consent(log), "approved": consent(log, "approved")}
    marks["S-1"] = session(log, "S-1")[0]
    marks["lock"] = log.append(Event("lock.added", 950.0, "C-0001", "admin",
                                     details={"lock_id": "L-1"}))
    marks["S-2"] = session(log, "S-2")[0]
    marks["revoked"] = consent(log, "revoked")
    return marks


def test_a_whole_case_chains_and_its_sessions_begin_from_it() -> None:
    log = MemoryLog()
    marks = _case_story(log)
    assert check_cases(_items(log)) == ()
    assert check_sessions(_items(log)).faults == ()
    opened = decode(log.records[marks["S-2"]]).prev
    assert opened is not None and opened.index == marks["lock"]


@pytest.mark.parametrize("removed", ["approved", "lock", "revoked-before"])
def test_a_removed_case_record_is_pinpointed_at_the_case_s_next_record(removed: str) -> None:
    log = MemoryLog()
    marks = _case_story(log)
    if removed == "revoked-before":  # a whole session goes: its opening is the case's link
        gone = [i for i in range(len(log.records)) if decode(log.records[i]).session == "S-2"]
        after = marks["revoked"]
    else:
        gone = [marks[removed]]
        after = min(i for name, i in marks.items() if i > gone[0])
    faults = check_cases(_items(log, [i for i in range(len(log.records)) if i not in gone]))
    assert [(f.index, f.severity) for f in faults] == [(after, INTEGRITY)]
    assert f"case C-0001: record links to leaf {gone[0]}" in faults[0].what


def test_a_case_whose_first_records_are_missing_is_incomplete() -> None:
    log = MemoryLog()
    marks = _case_story(log)
    faults = check_cases(_items(log, list(range(marks["approved"], len(log.records)))))
    assert [(f.index, f.severity) for f in faults] == [(marks["approved"], INCOMPLETE)]


def test_records_from_before_case_chains_are_taken_until_the_first_link() -> None:
    log = MemoryLog()
    for kind in ("requested", "approved"):
        log.append_unlinked(Event(f"consent.{kind}", 900.0, "C-0001", "alice"))
    assert check_cases(_items(log)) == ()
    session(log, "S-1")  # linked from here on, to the last unlinked record
    assert check_cases(_items(log)) == ()
    log.append_unlinked(Event("consent.revoked", 990.0, "C-0001", "carol"))
    faults = check_cases(_items(log))  # an unlinked record after a linked one: removed link?
    assert [(f.index, f.severity) for f in faults] == [(len(log.records) - 1, INTEGRITY)]
    assert "no link to the previous record" in faults[0].what
