"""Session state files: sequence numbers are never handed out twice, even concurrently."""

from __future__ import annotations

import json
import multiprocessing
import stat
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest

from controller.client.engineer import SessionState, SessionStore
from controller.client.errors import InputError, SessionStateError

STATE = SessionState("S-0123456789ab", "C-0001", "web-1", "G-1")


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


def test_concurrent_processes_never_share_a_number(store: SessionStore) -> None:
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(4, mp_context=spawn) as pool:
        taken = list(pool.map(_reserve, [store.home] * 120, chunksize=3))
    assert sorted(taken) == list(range(1, 121))
    assert store.get(STATE.session_id).next_seq == 121


def _reserve(home: Path) -> int:
    return SessionStore(home).reserve_seq(STATE.session_id)[1]


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
                                     b'"agent_id": "a", "grant_id": "g", "next_seq": 0}'])
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
