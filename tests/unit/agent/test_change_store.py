"""The change store's own rules, on a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.changes import (
    MAX_PENDING_PER_GRANT,
    ChangeStore,
    StoredPreview,
    TooManyPending,
)


def _preview(n: int, grant_id: str = "G-1", *, at: float = 1000.0) -> StoredPreview:
    return StoredPreview(
        digest=f"sha256:{n:064x}", source="shop", undo_of=None, plan={}, schema_fp="",
        images={}, agent_id="web-1", case_id="C-1", grant_id=grant_id, session_id="S-1",
        engineer="alice", engineer_key_id="sha256:" + "ab" * 32, created_at=at,
        expires_at=at + 1800)


def test_a_grant_may_keep_only_so_many_changes_waiting(tmp_path: Path) -> None:
    store = ChangeStore(tmp_path / "changes.db")
    try:
        for n in range(MAX_PENDING_PER_GRANT):
            store.add_preview(_preview(n))
        with pytest.raises(TooManyPending, match="await the customer's decision"):
            store.add_preview(_preview(99))
        store.add_preview(_preview(98, grant_id="G-2"))  # another grant counts apart
        store.set_status(_preview(3).digest, "denied")  # a decision makes room
        store.add_preview(_preview(99))
        # Expired previews wait for nobody: once the sixteen expire there is room again.
        store.add_preview(_preview(100, at=1000.0 + 1800 + 1))
        assert [p.digest for p in store.previews(status="pending", now=1000.0 + 1801)] == \
            [_preview(100).digest]
    finally:
        store.close()

