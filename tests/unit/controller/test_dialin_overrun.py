"""A slow consumer of one streaming call on a dial-out stream: the controller holds at most
STREAM_BUFFER bytes for it, then cancels that call on the agent; other calls on the same
stream go on."""

from __future__ import annotations

import asyncio
import logging

import grpc
import pytest

from controller.dialin import OVERRUN, STREAM_BUFFER, Link
from rmaint.v1 import agent_pb2
from rmaint.v1 import controller_pb2 as pb
from tests.unit.controller.dialin_frames import written

REQUEST = agent_pb2.ExecuteRequest()
RESPONSE = agent_pb2.ExecuteResponse(result_json=b'{"stream": {}}')
PART = b"x" * (256 * 1024)




async def test_a_stalled_call_is_cancelled_and_the_others_go_on(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    link = Link("web-1", "peer")
    stalled = asyncio.Event()
    taken: list[bytes] = []

    async def slow(part: bytes) -> None:
        await stalled.wait()  # the engineer's terminal is paused
        taken.append(part)

    other_parts: list[bytes] = []

    async def quick(part: bytes) -> None:
        other_parts.append(part)

    slow_call = asyncio.create_task(link.call_stream(REQUEST, 30, slow))
    other_call = asyncio.create_task(link.call_stream(REQUEST, 30, quick))
    first, second = await written(link)
    for _ in range(800):  # 200 MiB offered: the reader never waits
        assert link.answer(pb.AgentFrame(call_id=first.call_id, part=PART)) is None
    (cancel,) = await written(link)
    assert cancel.call_id == first.call_id and cancel.WhichOneof("body") == "cancel"
    assert link.answer(pb.AgentFrame(call_id=second.call_id, part=b"ok")) is None
    assert link.answer(pb.AgentFrame(call_id=second.call_id, response=RESPONSE)) is None
    assert (await other_call).response == RESPONSE and other_parts == [b"ok"]
    stalled.set()
    ended = await slow_call
    assert (ended.code, ended.detail) == (grpc.StatusCode.RESOURCE_EXHAUSTED, OVERRUN)
    assert 0 < len(taken) * len(PART) <= STREAM_BUFFER  # no more was ever held
    assert link.idle and await written(link) == []  # cancelled once
