"""The Shell stream's end: however the call is cancelled, the shell is closed and recorded.

A real shell (the default) on a pseudo-terminal, and the real operation log and state store (SQLite
files in tmp_path), driven as the gRPC server drives the stream's generator.
"""

from __future__ import annotations

import asyncio
import os
import pwd
from collections.abc import AsyncIterator

import pytest

from agent.shell.policy import ShellPolicy
from agent.shell.service import ShellService
from agent.shell.tickets import Binding
from rmaint.v1 import agent_pb2 as pb
from tests.unit.agent.conftest import Rig, RigFactory, World


class Call:
    """One Shell call: its input queue, the messages it received, the task running it."""

    def __init__(self, service: ShellService, opening: pb.ShellOpen) -> None:
        self.input: asyncio.Queue[pb.ShellClientMessage | Exception | None] = asyncio.Queue()
        self.input.put_nowait(pb.ShellClientMessage(open=opening))
        self.received: list[pb.ShellServerMessage] = []
        self.task = asyncio.create_task(self._run(service))

    async def _run(self, service: ShellService) -> None:
        async for message in service.session(self._requests()):
            self.received.append(message)

    async def _requests(self) -> AsyncIterator[pb.ShellClientMessage]:
        while (message := await self.input.get()) is not None:
            if isinstance(message, Exception):
                raise message
            yield message

    async def output_contains(self, marker: bytes) -> None:
        async with asyncio.timeout(10):
            while marker not in b"".join(m.stdout for m in self.received):
                await asyncio.sleep(0.01)


@pytest.fixture
def shell_rig(make_rig: RigFactory) -> tuple[Rig, ShellService]:
    rig = make_rig(world=World(scopes=("shell",)))
    user = pwd.getpwuid(os.getuid()).pw_name
    service = ShellService(policy=ShellPolicy(user=user, idle_timeout=600),
                           log=rig.log, state=rig.state, clock=rig.clock)
    return rig, service


def ticket_for(rig: Rig, service: ShellService) -> pb.ShellOpen:
    grant = rig.world.grant
    binding = Binding(grant.grant_id, "C-1", "S-1", "alice", grant.engineer_key_id, 1)
    ticket, _ = service.tickets.issue(binding, ttl=60, now=rig.clock())
    return pb.ShellOpen(ticket=ticket, engineer_key_id=grant.engineer_key_id, term="dumb",
                        window=pb.ShellWindow(cols=80, rows=24))


async def started(rig: Rig, service: ShellService) -> Call:
    call = Call(service, ticket_for(rig, service))
    call.input.put_nowait(pb.ShellClientMessage(stdin=b"echo up-$((2+3)); sleep 300\n"))
    await call.output_contains(b"up-5")
    assert len(service.live.list()) == 1
    return call


def login_and_result(rig: Rig) -> tuple[tuple[str, str], ...]:
    """The login's attempt and the result recorded against it, as (outcome, detail)."""
    entries = rig.log.entries()
    (login,) = [e for e in entries if e.operation == "shell.login"]
    return tuple((e.outcome, e.detail) for e in entries
                 if e.id == login.id or e.attempt_id == login.id)


async def test_a_call_cancelled_again_while_closing_still_closes_the_shell(
        shell_rig: tuple[Rig, ShellService]) -> None:
    rig, service = shell_rig
    call = await started(rig, service)
    call.task.cancel()  # the client went away
    await asyncio.sleep(0)  # the close has begun: its first await is on the shell's exit
    call.task.cancel()  # and gRPC cancels the call's task once more
    with pytest.raises(asyncio.CancelledError):
        await call.task
    assert service.live.list() == []
    (attempt, result) = login_and_result(rig)
    assert attempt[0] == "allowed"
    assert result[0] == "cancelled" and result[1].startswith("disconnected, exit status ")


@pytest.mark.parametrize("end", [None, OSError("the call broke")], ids=["ends", "breaks"])
async def test_input_that_ends_however_it_ends_ends_the_shell(
        shell_rig: tuple[Rig, ShellService], end: Exception | None) -> None:
    rig, service = shell_rig
    call = await started(rig, service)
    call.input.put_nowait(end)  # the busy shell alone would not end
    async with asyncio.timeout(10):
        await call.task
    assert call.received[-1].WhichOneof("kind") == "exit"
    assert call.received[-1].exit.reason == "disconnected"
    assert service.live.list() == []
    assert login_and_result(rig)[1][0] == "cancelled"


async def test_a_shell_that_exits_under_more_input_ends_as_exited(
        shell_rig: tuple[Rig, ShellService]) -> None:
    rig, service = shell_rig
    call = Call(service, ticket_for(rig, service))
    call.input.put_nowait(pb.ShellClientMessage(stdin=b"exit 3\n"))
    for _ in range(50):  # typed on after the exit: the terminal refuses it
        call.input.put_nowait(pb.ShellClientMessage(stdin=b"echo late\n"))
    async with asyncio.timeout(10):
        await call.task
    assert (call.received[-1].exit.reason, call.received[-1].exit.status) == ("exited", 3)
    assert login_and_result(rig)[1] == ("ok", "exited, exit status 3")
