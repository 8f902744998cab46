"""Reverse shell offers: one agent cannot take every other agent's room, and the gateway's
input to a claimed stream waits once the agent is not taking it (bounded outbox)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest

from controller.gateway.reverse import MAX_OFFERS_PER_AGENT, OUTBOX, ReverseLink, ReverseShells
from rmaint.v1 import agent_pb2 as pb


async def _never() -> AsyncIterator[pb.ShellServerMessage]:
    await asyncio.Event().wait()
    yield pb.ShellServerMessage()


async def test_one_agent_holds_a_few_offers_and_others_still_get_theirs() -> None:
    shells = ReverseShells()
    tickets = [secrets.token_hex(16) for _ in range(MAX_OFFERS_PER_AGENT + 3)]
    held = []
    for ticket in tickets:
        held.append(asyncio.create_task(anext(shells.serve("greedy", ticket, _never()), None)))
        await asyncio.sleep(0)
    await asyncio.sleep(0.02)
    try:
        assert shells.offered() == MAX_OFFERS_PER_AGENT
        # The oldest offers made room: their streams ended, with no message for the agent.
        assert [t.done() for t in held] == [True] * 3 + [False] * MAX_OFFERS_PER_AGENT
        assert all(t.result() is None for t in held[:3])
        other = asyncio.create_task(anext(shells.serve("web-2", secrets.token_hex(16),
                                                       _never()), None))
        await asyncio.sleep(0.02)
        assert not other.done() and shells.offered() == MAX_OFFERS_PER_AGENT + 1
        other.cancel()
    finally:
        for task in held:
            task.cancel()
        await asyncio.gather(*held, return_exceptions=True)


async def test_unclaimed_tickets_cannot_keep_the_next_login_out() -> None:
    shells = ReverseShells()
    unused = [asyncio.create_task(anext(shells.serve("web-1", secrets.token_hex(16),
                                                     _never()), None))
              for _ in range(MAX_OFFERS_PER_AGENT)]  # tickets issued, never used
    await asyncio.sleep(0.02)
    ticket, opened = secrets.token_hex(16), asyncio.Queue[pb.ShellServerMessage]()
    opened.put_nowait(pb.ShellServerMessage(opened=pb.ShellOpened(shell_id="sh-1")))

    async def answers() -> AsyncIterator[pb.ShellServerMessage]:
        while True:
            yield await opened.get()

    serving = asyncio.create_task(anext(shells.serve("web-1", ticket, answers()), None))
    link, first = await asyncio.wait_for(
        shells.claim("web-1", pb.ShellOpen(ticket=ticket)), 5)
    assert first.shell_id == "sh-1"
    assert await asyncio.wait_for(serving, 5) == pb.ShellClientMessage(
        open=pb.ShellOpen(ticket=ticket))
    await link.close()
    assert shells._arrived.keys() == shells._offers.keys()  # a login leaves nothing behind
    assert [t.done() for t in unused] == [True] + [False] * (MAX_OFFERS_PER_AGENT - 1)
    for task in unused:
        task.cancel()
    await asyncio.gather(*unused, return_exceptions=True)


async def test_input_waits_when_the_agent_takes_nothing() -> None:
    link = ReverseLink(_never())
    for _ in range(OUTBOX):
        await asyncio.wait_for(link.send(pb.ShellClientMessage()), 1)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(link.send(pb.ShellClientMessage()), 0.05)
    await link.close()  # closing a full outbox still ends the stream
    assert [m async for m in link.outgoing()] == []
