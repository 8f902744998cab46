"""An exchange carries at most MAX_BATCH_BYTES of records (one record at least), so that a
backlog of large records never exceeds the 4 MiB a message may hold."""

from __future__ import annotations

from agent.witness import MAX_BATCH_BYTES, within_bytes


def test_batches_are_bounded_by_bytes() -> None:
    big = [b"x" * (256 * 1024)] * 500  # 125 MiB of records: far over a message's limit
    batch = within_bytes(big, MAX_BATCH_BYTES)
    assert 0 < sum(map(len, batch)) <= MAX_BATCH_BYTES < 4 * 1024 * 1024 // 2
    assert len(batch) == 4
    assert within_bytes([b"y" * (MAX_BATCH_BYTES + 1), b"z"], MAX_BATCH_BYTES) == \
        [b"y" * (MAX_BATCH_BYTES + 1)]  # sent alone: the controller refuses it, with a reason
    small = [b"s"] * 10
    assert within_bytes(small, MAX_BATCH_BYTES) == small
