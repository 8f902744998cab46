"""Streaming calls on one dial-out stream (controller.dialin.Link.call_stream)."""

from __future__ import annotations

import asyncio
import logging

import grpc
import pytest

from controller.dialin import Link
from controller.relay import OFFLINE
from rmaint.v1 import agent_pb2
from rmaint.v1 import controller_pb2 as pb
from tests.unit.controller.dialin_frames import written

REQUEST = agent_pb2.ExecuteRequest()
RESPONSE = agent_pb2.ExecuteResponse(result_json=b'{"stream": {}}')


@pytest.fixture(autouse=True)
def _quiet(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)




class _Parts:
    def __init__(self, fail_at: int = 0) -> None:
        self.parts: list[bytes] = []
        self.fail_at = fail_at

    async def __call__(self, part: bytes) -> None:
        self.parts.append(part)
        if len(self.parts) == self.fail_at:
            raise OverflowError("too much")


async def test_parts_are_handed_on_in_order_then_the_answer_ends_the_call() -> None:
    link = Link("web-1", "peer")
    parts = _Parts()
    call = asyncio.create_task(link.call_stream(REQUEST, 5, parts))
    (sent,) = await written(link)
    assert sent.WhichOneof("body") == "execute_stream"
    for data in (b"one", b"", b"three"):
        assert link.answer(pb.AgentFrame(call_id=sent.call_id, part=data)) is None
    assert link.answer(pb.AgentFrame(call_id=sent.call_id, response=RESPONSE)) is None
    assert (await call).response == RESPONSE
    assert parts.parts == [b"one", b"", b"three"]
    late = link.answer(pb.AgentFrame(call_id=sent.call_id, part=b"late"))
    assert late is not None and late.message == "permission denied"
    assert link.idle and await written(link) == []  # answered: no cancel frame


async def test_a_part_for_a_unary_call_is_refused() -> None:
    link = Link("web-1", "peer")
    call = asyncio.create_task(link.call(REQUEST, 5))
    (sent,) = await written(link)
    refusal = link.answer(pb.AgentFrame(call_id=sent.call_id, part=b"x"))
    assert refusal is not None and refusal.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert not call.done()
    link.close()
    assert (await call).detail == OFFLINE


async def test_a_failing_receiver_cancels_the_call_on_the_agent() -> None:
    link = Link("web-1", "peer")
    call = asyncio.create_task(link.call_stream(REQUEST, 5, _Parts(fail_at=1)))
    (sent,) = await written(link)
    link.answer(pb.AgentFrame(call_id=sent.call_id, part=b"x"))
    with pytest.raises(OverflowError):
        await call
    (cancel,) = await written(link)
    assert (cancel.call_id, cancel.WhichOneof("body")) == (sent.call_id, "cancel")


async def test_a_lost_stream_or_a_timeout_ends_a_streaming_call() -> None:
    link = Link("web-1", "peer")
    timed_out = await link.call_stream(REQUEST, 0.05, _Parts())
    assert timed_out.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert [f.WhichOneof("body") for f in await written(link)] == ["execute_stream", "cancel"]
    call = asyncio.create_task(link.call_stream(REQUEST, 5, _Parts()))
    await written(link)
    link.close()
    assert ((await call).code, (await call).detail) == (grpc.StatusCode.UNAVAILABLE, OFFLINE)
