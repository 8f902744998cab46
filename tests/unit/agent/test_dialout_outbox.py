"""The dial-out outbox: a streaming call's parts wait for the connection to take them."""

from __future__ import annotations

import asyncio

import pytest

from agent.dialout import _Gone, _Outbox
from rmaint.v1 import controller_pb2 as pb


async def test_room_waits_until_the_stream_takes_frames() -> None:
    outbox = _Outbox()
    for call_id in range(3):
        outbox.put_nowait(pb.AgentFrame(call_id=call_id, part=b"x"))
    waiting = asyncio.create_task(outbox.room(1))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    await outbox.get()
    await asyncio.sleep(0.01)
    assert not waiting.done()  # two still wait
    await outbox.get()
    await asyncio.wait_for(waiting, 1)


async def test_room_raises_once_the_stream_is_gone() -> None:
    outbox = _Outbox()
    outbox.put_nowait(pb.AgentFrame(call_id=1, part=b"x"))
    waiting = asyncio.create_task(outbox.room(0))
    await asyncio.sleep(0.01)
    outbox.close()
    with pytest.raises(_Gone):
        await asyncio.wait_for(waiting, 1)
    with pytest.raises(_Gone):
        await outbox.room(10)
