"""Reconcile never says "consistent" over a kept refusal, a bad receipt or a duplicate event,
and explains why the two sides' operation counts differ (pure)."""

from __future__ import annotations

from controller.audit.reconcile import (
    BAD_RECEIPT,
    CONSISTENT,
    DIFFERENT,
    DUPLICATE,
    INCOMPLETE,
    REFUSED,
    AgentOperation,
    ControllerOperation,
    compare,
    with_refusal,
)
from controller.audit.witness import EXCHANGE_FAILED
from controller.cli.audit import counts_differ_by
from permissions import Receipt


def _receipt(seq: int) -> Receipt:
    return Receipt(agent_id="web-1", session_id="S-1", seq=seq, operation="diag.system",
                   operation_digest="sha256:o", outcome="ok", result_digest="sha256:r", at=0,
                   log_index=seq)


AGENT = [AgentOperation(1, "S-1", 1, "sha256:o", "ok", "sha256:r")]
MATCHED = ControllerOperation(10, "S-1", 1, "sha256:o", _receipt(1))


def test_a_kept_refusal_is_never_consistent() -> None:
    assert compare(AGENT, [MATCHED], mirrored_size=1).status == CONSISTENT
    assert with_refusal(CONSISTENT, "") == CONSISTENT
    assert with_refusal(CONSISTENT, "checkpoint of size 3 is below the cosigned 5") == REFUSED
    assert with_refusal(DIFFERENT, "a different log key") == REFUSED
    stalled = EXCHANGE_FAILED + "entries: a record is at most 256 KiB"
    assert with_refusal(CONSISTENT, stalled) == INCOMPLETE
    assert with_refusal(DIFFERENT, stalled) == DIFFERENT


def test_bad_receipts_and_duplicate_events_are_differences() -> None:
    forged = ControllerOperation(11, "S-1", 2, "sha256:o", None,
                                 "not signed by the agent's enrolled key (bad signature)")
    again = ControllerOperation(12, "S-1", 1, "sha256:o", None)
    found = compare(AGENT, [MATCHED, forged, again], mirrored_size=1)
    assert found.status == DIFFERENT
    assert [(d.kind, d.seq, d.event_id) for d in found.differences] == [
        (BAD_RECEIPT, 2, 11), (DUPLICATE, 1, 12)]
    assert "10, 12" in found.differences[1].detail


def test_events_that_never_reached_the_agent_are_counted_and_explained() -> None:
    unanswered = [ControllerOperation(20 + n, "S-1", 5 + n, "sha256:o", None, outcome="error")
                  for n in range(4)]
    found = compare(AGENT, [MATCHED, *unanswered], mirrored_size=1)
    assert (found.status, found.not_relayed) == (CONSISTENT, 4)
    assert "4 controller event(s) never reached the agent's log" in counts_differ_by(found)
