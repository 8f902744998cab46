"""Streaming operations through the dispatcher: parts in order, a receipt over their hash,
the output limit, revocation, and the wrong call refused; diag.watch on a fake clock."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any

import pytest

import permissions as p
from agent.catalogue import PART_LIMIT, Emit, OperationSpec, StreamRunner, streaming
from agent.context import OperationContext
from agent.diag import watch
from agent.errors import Cancelled, InvalidParams, OperationFailed
from tests.unit.agent.conftest import RigFactory


def _parts_spec(parts: list[bytes], *, limit: int = 1 << 20) -> OperationSpec:
    def prepare(params: Any, context: OperationContext) -> StreamRunner:
        async def run(emit: Emit) -> dict[str, Any]:
            for part in parts:
                await emit(part)
            return {"made": len(parts), "session": context.session_id}
        return run
    return streaming("test.stream", "diag.read", prepare, deadline=5.0, output_limit=limit)


class _Sent:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    async def __call__(self, part: bytes) -> None:
        self.parts.append(part)


async def test_parts_are_sent_in_order_and_the_receipt_binds_their_hash(
        make_rig: RigFactory) -> None:
    parts = [b"first\n", b"", b"second part\n", b"x" * 1000]
    rig = make_rig(extra={"test.stream": _parts_spec(parts)})
    sent = _Sent()
    done = await rig.dispatcher.execute_stream(rig.world.op(operation="test.stream"), sent)
    assert sent.parts == parts
    result = json.loads(done.result_json)
    joined = b"".join(parts)
    assert result == {"made": 4, "session": "S-1", "stream": {
        "parts": 4, "bytes": len(joined), "sha256": hashlib.sha256(joined).hexdigest()}}
    key = rig.agent_key.public_key()
    receipt = p.Receipt.from_payload(p.verify(done.receipt, p.RECEIPT, {p.key_id(key): key}))
    assert receipt.result_digest == "sha256:" + hashlib.sha256(done.result_json).hexdigest()
    assert receipt.operation == "test.stream" and receipt.outcome == "ok"
    assert [(e.kind, e.outcome) for e in rig.log.entries()] == \
        [("attempt", "allowed"), ("result", "ok")]


async def test_output_over_the_limit_ends_with_an_error_outcome(make_rig: RigFactory) -> None:
    rig = make_rig(extra={"test.stream": _parts_spec([b"abc", b"defg", b"h"], limit=5)})
    sent = _Sent()
    with pytest.raises(OperationFailed, match="over its size limit"):
        await rig.dispatcher.execute_stream(rig.world.op(operation="test.stream"), sent)
    assert sent.parts == [b"abc"]
    _, result = rig.log.entries()
    assert (result.kind, result.outcome) == ("result", "error")
    assert "size limit" in result.detail


async def test_a_part_over_the_part_limit_is_refused(make_rig: RigFactory) -> None:
    rig = make_rig(extra={"test.stream": _parts_spec([b"y" * (PART_LIMIT + 1)],
                                                     limit=4 * PART_LIMIT)})
    with pytest.raises(OperationFailed):
        await rig.dispatcher.execute_stream(rig.world.op(operation="test.stream"), _Sent())
    assert rig.log.entries()[-1].outcome == "error"


async def test_the_wrong_call_is_refused_as_invalid(make_rig: RigFactory) -> None:
    rig = make_rig(extra={"test.stream": _parts_spec([b"a"])})
    with pytest.raises(InvalidParams, match=r"test\.stream streams its output"):
        await rig.dispatcher.execute(rig.world.op(1, operation="test.stream"))
    sent = _Sent()
    with pytest.raises(InvalidParams, match=r"diag\.memory does not stream"):
        await rig.dispatcher.execute_stream(rig.world.op(2, operation="diag.memory"), sent)
    assert sent.parts == []
    assert [(e.kind, e.outcome) for e in rig.log.entries()] == [
        ("attempt", "allowed"), ("result", "invalid"), ("attempt", "allowed"),
        ("result", "invalid")]


async def test_revocation_cancels_a_watch_at_once(make_rig: RigFactory) -> None:
    rig = make_rig()
    sent = _Sent()
    op = rig.world.op(operation="diag.watch",
                      params={"metrics": ["load"], "every": 1, "for": 600})
    running = asyncio.create_task(rig.dispatcher.execute_stream(op, sent))
    while not sent.parts:  # the first sample comes after one second
        await asyncio.sleep(0.02)
    started = time.monotonic()
    revoked = await rig.dispatcher.revoke(rig.world.revocation())
    with pytest.raises(Cancelled):
        await running
    assert time.monotonic() - started < 1.0
    assert revoked.cancelled == 1 and rig.dispatcher.in_flight() == 0
    assert json.loads(sent.parts[0])["seq"] == 1
    assert [(e.kind, e.outcome) for e in rig.log.entries()] == \
        [("attempt", "allowed"), ("result", "cancelled")]


async def test_a_caller_going_away_cancels_the_stream(make_rig: RigFactory) -> None:
    rig = make_rig()
    op = rig.world.op(operation="diag.watch", params={"metrics": ["memory"], "every": 1})
    running = asyncio.create_task(rig.dispatcher.execute_stream(op, _Sent()))
    while rig.dispatcher.in_flight() == 0:
        await asyncio.sleep(0.01)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert rig.log.entries()[-1].outcome == "cancelled"


class _FakeSampler(watch.Sampler):
    def __init__(self, query: watch.WatchQuery, clock: _Clock) -> None:
        super().__init__(query)
        self.clock = clock
        self.taken: list[float] = []

    async def sample(self) -> dict[str, Any]:
        self.taken.append(self.clock.now)
        self.clock.now += 0.3  # a slow reading
        return {"load": {"load_average_1m": 0.5}, "processes": {"redactions": 2}}


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


async def test_watch_samples_on_an_absolute_schedule() -> None:
    clock = _Clock()
    query = watch.WatchQuery(metrics=("load", "processes"), every=2, duration=7)
    sampler = _FakeSampler(query, clock)
    sent = _Sent()
    summary = await watch.watch(query, sent, sleep=clock.sleep, monotonic=clock,
                                now=lambda: 1.7e9 + clock.now, sampler=sampler)
    assert sampler.taken == [102.0, 104.0, 106.0]  # 7 // 2 samples, not drifting
    assert clock.slept == [2.0, 1.7, 1.7]
    lines = [json.loads(part) for part in sent.parts]
    assert all(part.endswith(b"\n") and part.count(b"\n") == 1 for part in sent.parts)
    assert [line["seq"] for line in lines] == [1, 2, 3]
    assert lines[0]["at"] == 1.7e9 + 102.0 and lines[0]["redactions"] == 2
    assert summary == {"samples": 3, "metrics": ["load", "processes"], "every_seconds": 2,
                       "for_seconds": 7, "redactions": 6}


@pytest.mark.parametrize("params", [
    {"metrics": []}, {"metrics": ["cpu", "cpu"]}, {"metrics": ["swap"]}, {"metrics": "cpu"},
    {"every": 0}, {"every": 3601}, {"for": 86401}, {"every": 10, "for": 5},
    {"top": 0}, {"interval": 1}, {"metrics": [1]},
])
def test_watch_parameters_are_checked(params: dict[str, Any]) -> None:
    with pytest.raises(InvalidParams, match=r"diag\.watch"):
        watch.parse_watch(params)


def test_watch_defaults() -> None:
    query = watch.parse_watch({"metrics": ["cpu", "processes"], "every": 2, "top": 3})
    assert (query.metrics, query.every, query.duration, query.top) == \
        (("cpu", "processes"), 2.0, 60.0, 3)
    assert watch.sample_count(2, 60) == 30 and watch.sample_count(5, 5) == 1


async def test_the_host_sampler_reads_every_metric() -> None:
    query = watch.WatchQuery(metrics=watch.METRICS, every=1, duration=1, top=2)
    sampler = watch.Sampler(query)
    await sampler.start()
    values = await sampler.sample()
    assert set(values) == set(watch.METRICS)
    assert 0.0 <= values["cpu"]["percent"] <= 100.0
    assert values["memory"]["memory"]["total_bytes"] > 0
    assert len(values["processes"]["processes"]) <= 2
    assert isinstance(values["network"]["interfaces"], list)
