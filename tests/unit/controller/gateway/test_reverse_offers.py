"""Reverse shell offers: one agent cannot take every other agent's room, and the gateway's
input to a claimed stream waits once the agent is not taking it (bounded outbox)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest

from controller.errors import FailedPrecondition
from controller.gateway.reverse import MAX_OFFERS_PER_AGENT, OUTBOX, ReverseLink, ReverseShells
from rmaint.v1 import agent_pb2 as pb


async def _never() -> AsyncIterator[pb.ShellServerMessage]:
    await asyncio.Event().wait()
    yield pb.ShellServerMessage()


async def test_one_agent_holds_a_few_offers_and_others_still_get_theirs() -> None:
    shells = ReverseShells()
    held = [asyncio.create_task(anext(shells.serve("greedy", secrets.token_hex(16), _never()),
                                      None)) for _ in range(MAX_OFFERS_PER_AGENT + 3)]
    await asyncio.sleep(0.02)
    try:
        assert shells.offered() == MAX_OFFERS_PER_AGENT
        refused = [t for t in held if t.done()]
        assert len(refused) == 3
        assert all(isinstance(t.exception(), FailedPrecondition) for t in refused)
        other = asyncio.create_task(anext(shells.serve("web-2", secrets.token_hex(16),
                                                       _never()), None))
        await asyncio.sleep(0.02)
        assert not other.done() and shells.offered() == MAX_OFFERS_PER_AGENT + 1
        other.cancel()
    finally:
        for task in held:
            task.cancel()
        await asyncio.gather(*held, return_exceptions=True)


async def test_input_waits_when_the_agent_takes_nothing() -> None:
    link = ReverseLink(_never())
    for _ in range(OUTBOX):
        await asyncio.wait_for(link.send(pb.ShellClientMessage()), 1)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(link.send(pb.ShellClientMessage()), 0.05)
    await link.close()  # closing a full outbox still ends the stream
    assert [m async for m in link.outgoing()] == []
