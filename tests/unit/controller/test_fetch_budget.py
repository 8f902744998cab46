"""An agent's fetch of requests stays inside one gRPC message, the newest first."""

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
