"""The registry of live shells: ending by grant or id, and watchers (fake clock)."""

from __future__ import annotations

import asyncio

import pytest

from agent.errors import NotFound
from agent.shell.live import WATCH_QUEUE, LiveShells
from agent.shell.tickets import Binding


def binding(grant_id: str) -> Binding:
    return Binding(grant_id, "C-1", f"S-{grant_id}", "alice", "sha256:" + "a" * 64, 1)


async def test_revoking_a_grant_ends_its_shells_only() -> None:
    live = LiveShells(lambda: 1000.0)
    one = live.add(live.new_id(), binding("G-1"), "maint")
    two = live.add(live.new_id(), binding("G-1"), "maint")
    other = live.add(live.new_id(), binding("G-2"), "maint")
    assert live.end_grant("G-1") == 2
    assert one.ended.result() == two.ended.result() == "revoked"
    assert not other.ended.done()


async def test_the_first_reason_wins() -> None:
    live = LiveShells(lambda: 1000.0)
    shell = live.add(live.new_id(), binding("G-1"), "maint")
    assert live.kill(shell.shell_id) is shell
    live.end_grant("G-1")
    assert shell.ended.result() == "killed"


async def test_unknown_shells_are_not_found() -> None:
    live = LiveShells(lambda: 1000.0)
    with pytest.raises(NotFound):
        live.kill("sh-000000000000")
    with pytest.raises(NotFound):
        await anext(live.watch("sh-000000000000"))


async def test_a_watcher_sees_output_until_the_shell_is_removed() -> None:
    live = LiveShells(lambda: 1000.0)
    shell = live.add(live.new_id(), binding("G-1"), "maint")
    watch = live.watch(shell.shell_id)
    first = anext(watch)
    pending = asyncio.ensure_future(first)
    await asyncio.sleep(0)  # the watcher registers
    shell.output(b"hello", 1001.0)
    assert await pending == b"hello"
    assert shell.last_activity == 1001.0
    live.remove(shell)
    assert [chunk async for chunk in watch] == []
    assert live.list() == []


async def test_a_watcher_that_lags_is_dropped_not_waited_for() -> None:
    live = LiveShells(lambda: 1000.0)
    shell = live.add(live.new_id(), binding("G-1"), "maint")
    watch = live.watch(shell.shell_id)
    pending = asyncio.ensure_future(anext(watch))
    await asyncio.sleep(0)
    for i in range(WATCH_QUEUE + 10):  # never read meanwhile
        shell.output(b"x", 1000.0 + i)
    assert not shell.watchers
    chunks = [await pending] + [chunk async for chunk in watch]
    assert len(chunks) <= WATCH_QUEUE and set(chunks) == {b"x"}
