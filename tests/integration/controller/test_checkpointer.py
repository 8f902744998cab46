"""The controller's checkpoint schedule on real stores, with a fake clock: a checkpoint for
every round in which the log grew (so at most one a second under load, and one within a
second of a session's close or an applied change, which are records like any other), none
when idle, where the kept file is rewritten every 60 s instead, and a last one on stop.

Why idle rounds sign nothing: a checkpoint names origin, size and root only (no time), and
Ed25519 is deterministic, so signing the same tree again gives the same bytes."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519

import tlog
from controller.audit.checkpointer import IDLE_INTERVAL, Checkpointer
from controller.audit.checkpoints import CHECKPOINT_FILE, read_kept
from controller.audit.records import Event
from controller.store import Store, auditlog
from tests.integration.controller._support import FakeClock

T0 = 1_700_000_000.0


def _append(store: Store, n: int, *, case: str = "C-1") -> None:
    store.write_sync(auditlog.append_many, [
        Event("consent.requested", T0, case, "alice", details={"request": f"R-{i}"})
        for i in range(n)])


async def test_checkpoints_follow_growth_and_idle_rounds_sign_nothing(
        store: Store, tmp_path: Path) -> None:
    signer = tlog.NoteSigner("example.test/controller-log",
                             ed25519.Ed25519PrivateKey.generate())
    clock = FakeClock(T0)
    checkpointer = Checkpointer(store, signer, tmp_path, clock)

    _append(store, 3)
    first = await checkpointer.checkpoint()
    assert first is not None and first.size == 3 and read_kept(tmp_path) == first.note
    clock.advance(1)
    _append(store, 2)  # a round later: whatever was appended in between is signed
    second = await checkpointer.checkpoint()
    assert second is not None and second.size == 5

    # Idle: nothing new is signed; re-signing the same tree would give the same bytes.
    assert tlog.sign_checkpoint(tlog.Checkpoint(signer.name, 5, second.root_hash),
                                [signer]) == second.note
    (tmp_path / CHECKPOINT_FILE).unlink()
    clock.advance(IDLE_INTERVAL - 1)
    assert await checkpointer.checkpoint() is None
    assert read_kept(tmp_path) is None
    clock.advance(1)  # 60 s idle: the kept file is written again from the store
    assert await checkpointer.checkpoint() is None
    assert read_kept(tmp_path) == second.note
    assert [c.size for c in store.read_sync(auditlog.checkpoints)] == [3, 5]

    _append(store, 1)
    await checkpointer.stop()  # never started: stop still signs what is left
    latest = store.read_sync(auditlog.latest_checkpoint)
    assert latest is not None and latest.size == 6 and read_kept(tmp_path) == latest.note
