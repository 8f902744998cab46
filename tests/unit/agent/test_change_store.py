"""The change store's own rules, on a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

import permissions as p
from agent.changes import (
    FORGET_AFTER,
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



def test_previews_never_applied_are_forgotten_a_week_after_they_expire(tmp_path: Path) -> None:
    store = ChangeStore(tmp_path / "changes.db")
    key = ed25519.Ed25519PrivateKey.generate()
    try:
        for n in range(4):
            store.add_preview(_preview(n))
            context = p.ChangeContext(change_digest=_preview(n).digest, agent_id="web-1",
                                      case_id="C-1", grant_id="G-1",
                                      engineer_key_id="sha256:" + "ab" * 32)
            store.add_consent(f"K-{n}", _preview(n).digest,
                              p.consent_to_change(context, key, consent_id=f"K-{n}", now=1000),
                              1000.0)
        store.set_status(_preview(1).digest, "denied")
        store.journal_begin(_preview(2).digest, [], 1100.0)  # applied: an undo needs it
        store.journal_end(_preview(2).digest, "applied", 1101.0)
        expired = 1000.0 + 1800
        store.add_preview(_preview(10, at=expired + FORGET_AFTER - 1))  # not yet a week
        assert len(store.previews()) == 5
        store.add_preview(_preview(11, at=expired + FORGET_AFTER))
        kept = {p.digest for p in store.previews()}
        assert kept == {_preview(n).digest for n in (2, 10, 11)}
        assert [c.consent_id for c in store.consents(_preview(2).digest)] == ["K-2"]
        assert store.consents(_preview(0).digest) == []
        assert store.consents(_preview(1).digest) == []
    finally:
        store.close()


def test_a_consent_given_before_a_denial_is_not_used_after_it(tmp_path: Path) -> None:
    store = ChangeStore(tmp_path / "changes.db")
    key = ed25519.Ed25519PrivateKey.generate()
    try:
        store.add_preview(_preview(1))
        context = p.ChangeContext(change_digest=_preview(1).digest, agent_id="web-1",
                                  case_id="C-1", grant_id="G-1",
                                  engineer_key_id="sha256:" + "ab" * 32)
        store.add_consent("K-1", _preview(1).digest,
                          p.consent_to_change(context, key, consent_id="K-1", now=1000), 1000.0)
        store.set_status(_preview(1).digest, "denied", "changed my mind", only_from="pending")
        assert store.consume("K-1", 1001.0) is False  # an apply that looked before the denial
        assert store.consents(_preview(1).digest)[0].used_at is None
    finally:
        store.close()
