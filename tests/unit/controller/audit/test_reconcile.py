"""Reconciling the two sides of an operation (pure): matched by session and sequence number,
different digests or outcomes named, receipts beyond the mirror pending, not missing."""

from __future__ import annotations

from controller.audit.reconcile import (
    CONSISTENT,
    DIFFERENT,
    DIFFERS,
    INCOMPLETE,
    AgentOperation,
    ControllerOperation,
    agent_operations,
    compare,
)
from permissions import Receipt


def _receipt(seq: int, log_index: int, *, result: str = "sha256:r", op: str = "sha256:o"
             ) -> Receipt:
    return Receipt(agent_id="web-1", session_id="S-1", seq=seq, operation="diag.system",
                   operation_digest=op, outcome="ok", result_digest=result, at=0,
                   log_index=log_index)


def test_agent_records_become_operations_with_their_results() -> None:
    records = [
        {"id": 1, "kind": "attempt", "session_id": "S-1", "seq": 1, "outcome": "allowed",
         "operation_digest": "sha256:o"},
        {"id": 2, "kind": "attempt", "session_id": None, "seq": None, "outcome": "denied"},
        {"id": 3, "kind": "result", "attempt_id": 1, "outcome": "ok", "result_digest": "sha256:r"},
    ]
    assert agent_operations(records) == [AgentOperation(1, "S-1", 1, "sha256:o", "ok",
                                                        "sha256:r")]


def test_a_changed_result_or_operation_is_different_and_a_late_receipt_pending() -> None:
    agent = [AgentOperation(1, "S-1", 1, "sha256:o", "ok", "sha256:r"),
             AgentOperation(3, "S-1", 2, "sha256:o", "ok", "sha256:mine")]
    controller = [ControllerOperation(10, "S-1", 1, "sha256:o", _receipt(1, 1)),
                  ControllerOperation(11, "S-1", 2, "sha256:o", _receipt(2, 3)),
                  ControllerOperation(12, "S-1", 3, "sha256:o", _receipt(3, 5))]
    found = compare(agent, controller, mirrored_size=4)
    assert found.status == DIFFERENT and found.pending == 1
    assert [(d.kind, d.seq, d.agent_index, d.event_id) for d in found.differences] == [
        (DIFFERS, 2, 3, 11)]
    assert "result digest: receipt sha256:r, agent log sha256:mine" in found.differences[0].detail

    consistent = compare(agent[:1], controller[:1], mirrored_size=2)
    assert consistent.status == CONSISTENT and consistent.differences == ()
    assert compare(agent[:1], controller[:1] + controller[2:], 2).status == INCOMPLETE
