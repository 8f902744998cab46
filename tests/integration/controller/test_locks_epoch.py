"""The lock set's epoch and what agents learn of other customers' locks, on SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from agent.locks import LockKeeper
from controller.locks import LockBroker
from controller.store import Store
from controller.store import locks as store_locks
from controller.store.schema import counters
from permissions.locks import Lock
from pki.tls import TlsFiles
from tests.integration.controller.test_locks_store import KEY, T0, _seed


def test_a_new_epoch_is_drawn_and_kept(store: Store) -> None:
    assert store.read_sync(store_locks.current_epoch) == 0
    first = store.write_sync(store_locks.new_epoch)
    assert first > 0 and store.read_sync(store_locks.current_epoch) == first
    second = store.write_sync(store_locks.new_epoch)  # a restarted (or restored) controller
    assert second not in (0, first) and store.read_sync(store_locks.current_epoch) == second
    store.write_sync(store_locks.add_lock, Lock("L-1", "agent:web-1", "r", "admin", T0))
    assert store.read_sync(store_locks.lock_set_for_agent, "web-1", T0)[:2] == (second, 1)


def test_engineer_key_locks_reach_agents_without_their_reason(store: Store) -> None:
    _seed(store)
    store.write_sync(store_locks.add_lock, Lock("L-k", f"engineer-key:{KEY}",
                                                "fraud at acme", "admin", T0))
    store.write_sync(store_locks.add_lock, Lock("L-a", "agent:db-1", "db incident",
                                                "admin", T0))
    _, found = store.read_sync(store_locks.locks_for_agent, "db-1", T0)
    by_id = {lock.lock_id: lock for lock in found}
    assert (by_id["L-k"].target, by_id["L-k"].reason, by_id["L-k"].created_by) == \
        (f"engineer-key:{KEY}", "", "")
    assert by_id["L-a"].reason == "db incident"  # its own locks keep their reason


class _Enforcer:
    def __init__(self) -> None:
        self.locks: tuple[Lock, ...] = ()

    def apply_locks(self, locks: Sequence[Lock]) -> int:
        self.locks = tuple(locks)
        return 0


async def test_a_restored_store_still_locks_agents(store: Store, tmp_path: Path) -> None:
    """The store goes back to a backup (its counter lower than what the agent holds); the
    restarted controller's new epoch makes the agent take its next set all the same."""
    _seed(store)
    files = TlsFiles(tmp_path / "k", tmp_path / "c", tmp_path / "ca")  # never dialled here
    for n in range(5):
        store.write_sync(store_locks.add_lock, Lock(f"L-{n}", "case:C-0001", "r", "admin", T0))
        store.write_sync(store_locks.remove_lock, f"L-{n}", "admin", T0)
    enforcer = _Enforcer()
    keeper = LockKeeper(tmp_path, enforcer)
    before = await LockBroker(store, lambda: T0, files, "example.test", None).for_agent("web-1")
    assert before.version == 10 and await keeper.apply(before, "pull")

    store.write_sync(lambda c: c.execute(counters.update().where(
        counters.c.name == store_locks.LOCK_COUNTER).values(value=2)))  # the backup's
    restarted = LockBroker(store, lambda: T0, files, "example.test", None)
    store.write_sync(store_locks.add_lock, Lock("L-x", "agent:web-1", "incident", "admin", T0))
    after = await restarted.for_agent("web-1")
    assert after.version == 3 and after.epoch not in (0, before.epoch)
    assert await keeper.apply(after, "push")
    assert [lock.lock_id for lock in enforcer.locks] == ["L-x"]
    assert (await restarted.for_agent("web-1")).epoch == after.epoch  # once per process
