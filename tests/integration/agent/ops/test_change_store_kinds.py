"""The change store's kinds: a database made before ``kind`` keeps working."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from agent.changes import ChangeStore

OLD_SCHEMA = """
CREATE TABLE previews (
    digest TEXT PRIMARY KEY, source TEXT NOT NULL, undo_of TEXT, plan TEXT NOT NULL,
    schema_fp TEXT NOT NULL, images TEXT NOT NULL, agent_id TEXT NOT NULL,
    case_id TEXT NOT NULL, grant_id TEXT NOT NULL, session_id TEXT NOT NULL,
    engineer TEXT NOT NULL, engineer_key_id TEXT NOT NULL, created_at REAL NOT NULL,
    expires_at REAL NOT NULL, status TEXT NOT NULL, detail TEXT NOT NULL DEFAULT ''
);
CREATE TABLE journal (
    digest TEXT PRIMARY KEY, state TEXT NOT NULL, before TEXT NOT NULL,
    started_at REAL NOT NULL, finished_at REAL
);
INSERT INTO previews VALUES ('sha256:aa', 'shop', NULL, '{}', 'fp', '{}', 'web-1', 'C-1',
    'G-1', 'S-1', 'alice', 'sha256:k', 1.0, 2.0, 'pending', '');
INSERT INTO journal VALUES ('sha256:aa', 'applying', '[]', 1.0, NULL);
"""


def test_an_old_database_gets_the_kind_column(tmp_path: Path) -> None:
    path = tmp_path / "changes.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_SCHEMA)
    store = ChangeStore(path)
    try:
        stored = store.preview("sha256:aa")
        assert stored is not None and stored.kind == "data" and stored.plan == {}
        assert store.applying() == ["sha256:aa"] and store.applying("config") == []
        store.journal_end("sha256:aa", "applied", 3.0, {"rows": 1})
        assert store.journal_record("sha256:aa") == {"rows": 1}
    finally:
        store.close()
    reopened = ChangeStore(path)  # the columns are added once
    try:
        assert reopened.preview("sha256:aa").status == "applied"  # type: ignore[union-attr]
    finally:
        reopened.close()
