"""What one answer carries stays inside a gRPC message: the newest requests, events."""

from __future__ import annotations

from controller.services.agent_report import FETCH_BUDGET, within_budget
from permissions import Envelope


def _envelope(n: int, size: int) -> Envelope:
    return Envelope("application/vnd.rmaint.request.v1+json", f"{n:08d}".encode() * (size // 8),
                    ())


def test_the_newest_requests_that_fit_are_sent_oldest_first() -> None:
    found = [_envelope(n, 400_000) for n in range(12)]  # about 4.8 MB, oldest first
    sent = within_budget(found)
    assert sum(m.ByteSize() for m in sent) <= FETCH_BUDGET
    assert [m.payload[:8] for m in sent] == [f"{n:08d}".encode() for n in range(7, 12)]
    small = [_envelope(n, 80) for n in range(3)]
    assert [m.payload for m in within_budget(small)] == [e.payload for e in small]


def test_a_session_shows_its_newest_events_that_fit() -> None:
    from controller.services.records import _newest_within
    from rmaint.v1 import controller_pb2 as pb

    events = [pb.SessionEvent(event_id=n, params_json="x" * 1000) for n in range(10)]
    kept = _newest_within(events, 3500)
    assert [e.event_id for e in kept] == [7, 8, 9]  # in order, the newest
    assert _newest_within(events, 10**6) == events
