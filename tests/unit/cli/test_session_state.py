"""Session state files: sequence numbers are never handed out twice, even concurrently, and
keep increasing across a crash of the machine (the unsynced counter lost or damaged)."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

import permissions
from controller.client import engineer
from controller.client.engineer import SEQ_LEASE, SessionState, SessionStore
from controller.client.errors import InputError, SessionStateError
from pki import certs

STATE = SessionState("S-0123456789ab", "C-0001", "web-1", "G-1")
BOOT_A = "0a0a0a0a-0000-4000-8000-00000000000a"
BOOT_B = "0b0b0b0b-0000-4000-8000-00000000000b"


class Machine:
    """A boot id that changes when the test "reboots" the machine."""

    def __init__(self) -> None:
        self.boot: str | None = BOOT_A

    def __call__(self) -> str | None:
        return self.boot


def no_boot_id() -> str | None:
    return None


def durable_bound(home: Path) -> int:
    """What the fsync'd state file says: no number from here up was handed out."""
    saved = json.loads((home / "sessions" / f"{STATE.session_id}.json").read_text())
    return int(saved["next_seq"])


def counter_file(home: Path) -> Path:
    return home / "sessions" / f"{STATE.session_id}.seq"


@pytest.fixture
def store(tmp_path: Path) -> SessionStore:
    store = SessionStore(tmp_path)
    store.add(STATE)
    return store


def test_add_makes_the_session_current_with_the_documented_layout(store: SessionStore,
                                                                   tmp_path: Path) -> None:
    assert (tmp_path / "current-session").read_text().strip() == STATE.session_id
    saved = json.loads((tmp_path / "sessions" / f"{STATE.session_id}.json").read_text())
    assert saved == {"session_id": "S-0123456789ab", "case_id": "C-0001", "agent_id": "web-1",
                     "grant_id": "G-1", "next_seq": 1}
    mode = stat.S_IMODE((tmp_path / "sessions" / f"{STATE.session_id}.json").stat().st_mode)
    assert mode == 0o600
    assert store.current() == STATE


def test_reserve_returns_increasing_numbers_and_persists_them(store: SessionStore) -> None:
    assert [store.reserve_seq(STATE.session_id)[1] for _ in range(3)] == [1, 2, 3]
    assert SessionStore(store.home).get(STATE.session_id).next_seq == 4


def test_concurrent_threads_never_share_a_number(store: SessionStore) -> None:
    barrier = threading.Barrier(8)

    def take(_: int) -> list[int]:
        barrier.wait()
        return [store.reserve_seq(STATE.session_id)[1] for _ in range(25)]

    with ThreadPoolExecutor(8) as pool:
        taken = [seq for batch in pool.map(take, range(8)) for seq in batch]
    assert sorted(taken) == list(range(1, 201))


@pytest.mark.parametrize("boot_known", [True, False], ids=["counter", "durable-each"])
def test_concurrent_processes_never_share_a_number(store: SessionStore, boot_known: bool) -> None:
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(4, mp_context=spawn) as pool:
        taken = list(pool.map(_reserve, [(store.home, boot_known)] * 120, chunksize=3))
    assert sorted(taken) == list(range(1, 121))
    assert store.get(STATE.session_id).next_seq == 121


def _reserve(job: tuple[Path, bool]) -> int:
    home, boot_known = job
    store = SessionStore(home) if boot_known else SessionStore(home, boot=no_boot_id)
    return store.reserve_seq(STATE.session_id)[1]


def test_a_number_is_below_the_durable_bound_before_it_is_handed_out(tmp_path: Path) -> None:
    store = SessionStore(tmp_path, boot=Machine())
    store.add(STATE)
    for _ in range(2 * SEQ_LEASE + 5):
        _, seq = store.reserve_seq(STATE.session_id)
        assert seq < durable_bound(tmp_path)


def test_one_durable_write_covers_a_lease_of_numbers(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    store = SessionStore(tmp_path, boot=Machine())
    store.add(STATE)
    durable_writes: list[Path] = []
    write_private = engineer.write_private

    def counted(path: Path, data: bytes) -> None:
        durable_writes.append(path)
        write_private(path, data)

    monkeypatch.setattr(engineer, "write_private", counted)
    taken = [store.reserve_seq(STATE.session_id)[1] for _ in range(2 * SEQ_LEASE + 1)]
    assert taken == list(range(1, 2 * SEQ_LEASE + 2))
    assert len(durable_writes) == 3  # at 1, at 1 + SEQ_LEASE and at 1 + 2 * SEQ_LEASE


def test_without_a_boot_id_every_number_is_written_durably(tmp_path: Path) -> None:
    store = SessionStore(tmp_path, boot=no_boot_id)
    store.add(STATE)
    for expected in (1, 2, 3):
        assert store.reserve_seq(STATE.session_id)[1] == expected
        assert durable_bound(tmp_path) == expected + 1
    assert not counter_file(tmp_path).exists()


@pytest.mark.parametrize("left", ["as-last-written", "of-an-earlier-write", "lost", "empty",
                                  "zeroed"])
def test_after_a_crash_of_the_machine_numbers_keep_increasing(tmp_path: Path, left: str) -> None:
    machine = Machine()
    store = SessionStore(tmp_path, boot=machine)
    store.add(STATE)
    taken = [store.reserve_seq(STATE.session_id)[1] for _ in range(7)]
    earlier = counter_file(tmp_path).read_bytes()
    taken += [store.reserve_seq(STATE.session_id)[1] for _ in range(5)]
    # The unsynced counter may be stale, empty or gone; the fsync'd state file is intact.
    crashed = {"as-last-written": counter_file(tmp_path).read_bytes(),
               "of-an-earlier-write": earlier, "lost": None, "empty": b"",
               "zeroed": b"\0" * len(earlier)}[left]
    if crashed is None:
        counter_file(tmp_path).unlink()
    else:
        counter_file(tmp_path).write_bytes(crashed)
    machine.boot = BOOT_B
    after = [store.reserve_seq(STATE.session_id)[1] for _ in range(3)]
    assert after[0] > max(taken)
    assert after[0] <= max(taken) + SEQ_LEASE  # skips ahead by at most one lease
    assert after == list(range(after[0], after[0] + 3))
    assert store.get(STATE.session_id).next_seq == after[-1] + 1


def test_a_process_killed_mid_write_leaves_no_reusable_number(tmp_path: Path) -> None:
    store = SessionStore(tmp_path, boot=Machine())
    store.add(STATE)
    taken = [store.reserve_seq(STATE.session_id)[1] for _ in range(4)]
    counter_file(tmp_path).write_bytes(b"")  # truncated, never rewritten
    assert store.reserve_seq(STATE.session_id)[1] > max(taken)


@pytest.mark.parametrize("written", [0, 1, 20, 37, 50, 56, 57, 70, 76])
def test_a_counter_write_cut_short_hands_out_nothing_and_nothing_twice(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, written: int) -> None:
    store = SessionStore(tmp_path, boot=Machine())
    store.add(STATE)
    taken = [store.reserve_seq(STATE.session_id)[1] for _ in range(6)]
    pwrite = os.pwrite

    def short(fd: int, data: bytes, offset: int) -> int:
        return pwrite(fd, data[:written], offset)

    monkeypatch.setattr(os, "pwrite", short)
    with pytest.raises(OSError, match="short write"):
        store.reserve_seq(STATE.session_id)
    monkeypatch.undo()
    after = store.reserve_seq(STATE.session_id)[1]
    assert after > max(taken)


def test_a_state_file_rewritten_by_an_older_rmctl_is_followed(tmp_path: Path) -> None:
    # An older rmctl hands out the state file's next_seq and fsyncs next_seq + 1 each time,
    # without touching the counter: the counter then names a bound the file no longer has.
    store = SessionStore(tmp_path, boot=Machine())
    store.add(STATE)
    taken = [store.reserve_seq(STATE.session_id)[1] for _ in range(3)]
    older = durable_bound(tmp_path)
    taken.append(older)
    saved = json.loads((tmp_path / "sessions" / f"{STATE.session_id}.json").read_text())
    (tmp_path / "sessions" / f"{STATE.session_id}.json").write_text(
        json.dumps(saved | {"next_seq": older + 1}))
    after = [store.reserve_seq(STATE.session_id)[1] for _ in range(3)]
    assert after == [older + 1, older + 2, older + 3] and after[0] > max(taken)


def test_a_counter_beyond_its_bound_is_ignored(tmp_path: Path) -> None:
    store = SessionStore(tmp_path, boot=Machine())
    store.add(STATE)
    store.reserve_seq(STATE.session_id)
    bound = durable_bound(tmp_path)
    counter_file(tmp_path).write_text(f"{BOOT_A} {bound + 40:019d} {bound:019d}\n")
    assert store.reserve_seq(STATE.session_id)[1] == bound


def test_a_new_session_starts_its_own_counter(tmp_path: Path) -> None:
    store = SessionStore(tmp_path, boot=Machine())
    store.add(STATE)
    store.reserve_seq(STATE.session_id)
    store.forget(STATE.session_id)
    assert not counter_file(tmp_path).exists()
    store.add(STATE)
    assert store.reserve_seq(STATE.session_id)[1] == 1


def test_a_state_file_of_the_previous_layout_continues_where_it_was(tmp_path: Path) -> None:
    # Before counters, next_seq was the exact next number, fsync'd on every reservation.
    store = SessionStore(tmp_path, boot=Machine())
    store.add(SessionState(STATE.session_id, STATE.case_id, STATE.agent_id, STATE.grant_id,
                           next_seq=42))
    assert store.reserve_seq(STATE.session_id)[1] == 42
    assert store.reserve_seq(STATE.session_id)[1] == 43


def test_the_agent_key_is_kept_and_an_old_state_file_has_none(tmp_path: Path) -> None:
    raw = permissions.public_key_bytes(certs.generate_key().public_key())
    store = SessionStore(tmp_path, boot=Machine())
    store.add(replace(STATE, agent_public_key=raw))
    assert store.reserve_seq(STATE.session_id)[0].agent_public_key == raw
    assert store.get(STATE.session_id).agent_public_key == raw
    old = SessionStore(tmp_path / "old")
    old.add(STATE)  # written without the key, as an older rmctl did
    saved = json.loads((old.directory / f"{STATE.session_id}.json").read_text())
    assert "agent_public_key" not in saved
    assert old.get(STATE.session_id).agent_public_key is None


def test_forget_clears_the_current_pointer_only_for_its_session(store: SessionStore) -> None:
    other = SessionState("S-ffffffffffff", "C-0002", "db-1", "G-2")
    store.add(other, make_current=False)
    store.forget(other.session_id)
    assert store.current_id() == STATE.session_id
    store.forget(STATE.session_id)
    assert store.current() is None and store.current_id() is None


def test_no_current_session_is_none(tmp_path: Path) -> None:
    assert SessionStore(tmp_path).current() is None


@pytest.mark.parametrize("content", [b"", b"{", b"[]", b'{"session_id": "S-0123456789ab"}',
                                     b'{"session_id": "S-0123456789ab", "case_id": "C", '
                                     b'"agent_id": "a", "grant_id": "g", "next_seq": 0}',
                                     b'{"session_id": "S-0123456789ab", "case_id": "C", '
                                     b'"agent_id": "a", "grant_id": "g", "next_seq": 1, '
                                     b'"agent_public_key": "bm90IGEga2V5"}'])
def test_a_damaged_state_file_is_reported_not_reset(store: SessionStore, content: bytes) -> None:
    (store.home / "sessions" / f"{STATE.session_id}.json").write_bytes(content)
    with pytest.raises(SessionStateError, match="damaged"):
        store.reserve_seq(STATE.session_id)


def test_a_session_of_another_home_is_named(tmp_path: Path) -> None:
    with pytest.raises(SessionStateError, match="only be used from the home that opened it"):
        SessionStore(tmp_path).get("S-000000000000")


def test_a_damaged_current_pointer_is_reported(store: SessionStore) -> None:
    (store.home / "current-session").write_text("../../etc/passwd\n")
    with pytest.raises(SessionStateError, match="current-session is damaged"):
        store.current()


@pytest.mark.parametrize("bad", ["../x", "a/b", ".hidden", "", "S 1"])
def test_session_ids_cannot_escape_the_sessions_directory(store: SessionStore, bad: str) -> None:
    with pytest.raises(InputError):
        store.get(bad)
