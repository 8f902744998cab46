"""The agent's locks: applied by the dispatcher at once, kept across restarts, newest wins."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from agent.dispatcher import Dispatcher
from agent.errors import Cancelled, Refused
from agent.locks import LOCKS_FILE, LockKeeper
from permissions import key_id
from rmaint.v1 import agent_pb2
from tests.unit.agent.conftest import AGENT_ID, RigFactory, StaticTrust


def _set(version: int, *targets: str, expires_at: float = 0.0) -> agent_pb2.LockSet:
    return agent_pb2.LockSet(version=version, locks=[
        agent_pb2.Lock(lock_id=f"L-{n}", target=t, reason="r", created_by="admin",
                       created_at=1000.0, expires_at=expires_at)
        for n, t in enumerate(targets)])


async def test_a_lock_refuses_and_cancels_and_its_removal_restores(make_rig: RigFactory) -> None:
    rig = make_rig()
    keeper = LockKeeper(rig.state_path.parent, rig.dispatcher)
    await rig.dispatcher.execute(rig.world.op(1))
    running = asyncio.create_task(rig.dispatcher.execute(
        rig.world.op(2, operation="diag.processes", params={"interval": 5})))
    while rig.dispatcher.in_flight() == 0:
        await asyncio.sleep(0.01)
    started = time.monotonic()
    assert await keeper.apply(_set(1, "case:C-1"), "push")
    with pytest.raises(Cancelled):
        await running
    assert time.monotonic() - started < 1.0
    assert [(e.kind, e.outcome, e.detail) for e in rig.log.entries()][-1] == \
        ("result", "cancelled", "locked while running")
    with pytest.raises(Refused, match="locked"):
        await rig.dispatcher.execute(rig.world.op(3))
    assert not await keeper.apply(_set(1), "push")  # not newer: ignored
    with pytest.raises(Refused, match="locked"):
        await rig.dispatcher.execute(rig.world.op(4))
    assert await keeper.apply(_set(2), "stream")  # removed
    await rig.dispatcher.execute(rig.world.op(5))
    outcomes = [(e.kind, e.outcome, e.reason) for e in rig.log.entries()]
    assert ("attempt", "denied", "locked") in outcomes


@pytest.mark.parametrize("target", [f"agent:{AGENT_ID}", "grant:G-1", "engineer-key:{key}"])
async def test_each_kind_of_lock_covers_the_grant(make_rig: RigFactory, target: str) -> None:
    rig = make_rig()
    target = target.format(key=key_id(rig.world.engineer.public_key()))
    keeper = LockKeeper(rig.state_path.parent, rig.dispatcher)
    await rig.dispatcher.execute(rig.world.op(1))  # the grant is known from here on
    assert not rig.dispatcher.is_revoked("G-1")
    assert await keeper.apply(_set(7, target), "pull")
    with pytest.raises(Refused, match="locked"):
        await rig.dispatcher.execute(rig.world.op(2))
    assert rig.dispatcher.is_revoked("G-1")  # shell tickets under it are refused too
    assert await keeper.apply(_set(8), "pull")
    assert not rig.dispatcher.is_revoked("G-1")


async def test_an_expired_lock_no_longer_refuses(make_rig: RigFactory) -> None:
    rig = make_rig()
    keeper = LockKeeper(rig.state_path.parent, rig.dispatcher)
    await keeper.apply(_set(1, "grant:G-1", expires_at=1200.0), "push")
    with pytest.raises(Refused, match="locked"):
        await rig.dispatcher.execute(rig.world.op(1))
    rig.clock.now = 1200.0
    await rig.dispatcher.execute(rig.world.op(2, issued_at=1200))


async def test_the_set_is_kept_and_read_back_at_start(make_rig: RigFactory) -> None:
    rig = make_rig()
    home = rig.state_path.parent
    await LockKeeper(home, rig.dispatcher).apply(_set(3, "grant:G-1"), "push")
    path = home / LOCKS_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert json.loads(path.read_text())["version"] == 3
    again = Dispatcher(agent_id=AGENT_ID, signing_key=rig.agent_key,
                       trust=StaticTrust(rig.world.trust), state=rig.state, log=rig.log,
                       clock=rig.clock)
    restarted = LockKeeper(home, again)
    restarted.load()
    assert restarted.version == 3
    with pytest.raises(Refused, match="locked"):
        await again.execute(rig.world.op(1))
    assert not await restarted.apply(_set(2), "pull")  # an older set never undoes it


async def test_malformed_sets_and_files_change_nothing(make_rig: RigFactory) -> None:
    rig = make_rig()
    home = rig.state_path.parent
    keeper = LockKeeper(home, rig.dispatcher)
    assert not await keeper.apply(_set(5, "nonsense"), "push")
    assert keeper.version == 0
    (home / LOCKS_FILE).write_text("{not json")
    broken = LockKeeper(home, rig.dispatcher)
    broken.load()  # logged; fails closed until the controller's next set
    assert broken.version == 0 and broken.unknown
    with pytest.raises(Refused, match="locked"):
        await rig.dispatcher.execute(rig.world.op(1))
    assert await broken.apply(_set(0), "pull")  # any set ends it, even version 0
    await rig.dispatcher.execute(rig.world.op(2))


async def test_a_new_epoch_is_taken_whatever_its_version(make_rig: RigFactory) -> None:
    """A controller store restored from a backup hands out lower versions: its new epoch
    makes the agent take them; within an epoch versions only grow."""
    rig = make_rig()
    keeper = LockKeeper(rig.state_path.parent, rig.dispatcher)
    old = _set(40)
    old.epoch = 7
    assert await keeper.apply(old, "pull")
    restored = _set(31, "grant:G-1")
    restored.epoch = 9
    assert await keeper.apply(restored, "push")
    with pytest.raises(Refused, match="locked"):
        await rig.dispatcher.execute(rig.world.op(1))
    stale = _set(30)
    stale.epoch = 9
    assert not await keeper.apply(stale, "push")  # older within the epoch: ignored
    again = LockKeeper(rig.state_path.parent, rig.dispatcher)
    again.load()
    assert (again.epoch, again.version) == (9, 31)
    assert not await again.apply(stale, "pull")


async def test_a_set_without_an_epoch_cannot_shut_out_the_epoch_held(
        make_rig: RigFactory) -> None:
    rig = make_rig()
    keeper = LockKeeper(rig.state_path.parent, rig.dispatcher)
    current = _set(3)
    current.epoch = 7
    assert await keeper.apply(current, "pull")
    assert not await keeper.apply(_set(2**62), "push")  # no epoch: not a continuation
    later = _set(4, "grant:G-1")
    later.epoch = 7
    assert await keeper.apply(later, "push")
    with pytest.raises(Refused, match="locked"):
        await rig.dispatcher.execute(rig.world.op(1))
