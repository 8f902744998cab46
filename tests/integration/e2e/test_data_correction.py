"""Data correction through the real controller and agent processes and both CLIs.

describe -> preview -> the customer reviews unmasked values and consents to the digest
(rmagent changes, approve-change) -> apply -> undo (its own preview, consent and apply).
A masked value never reaches the controller: not in results, not in its files.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from demo.correction import SOURCES
from demo.deployment import wait_until
from tests.integration.e2e.conftest import AGENT_ID, E2E, one_error_line

SECRET = "ada-private-91c2@example.test"  # noqa: S105 - a masked test value


def _shop(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.executescript("""
            CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT);
            CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL,
                                 status TEXT NOT NULL, total NUMERIC);
            INSERT INTO orders VALUES (10, 1, 'opne', 12.5);
        """)
        db.executemany("INSERT INTO customers VALUES (?, ?, ?)",
                       [(1, "Ada", SECRET), (2, "Bob", None)])


def _rows(path: Path) -> list[Any]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT * FROM orders ORDER BY id").fetchall() + \
            db.execute("SELECT * FROM customers ORDER BY id").fetchall()


def _sources(path: Path) -> str:
    return SOURCES.format(path=path)  # the demo's allowlist of the same sample database


def _consent_and_apply(e2e: E2E, digest: str) -> dict[str, Any]:
    d = e2e.d
    listed = d.json(d.rmagent("changes", "--json"))
    assert digest in [c["digest"] for c in listed]
    unasked = d.rmagent("approve-change", digest[:24], check=False)  # no terminal to ask on
    assert "not consented: confirmation needs a terminal; pass --yes" in one_error_line(unasked)
    consent = d.json(d.rmagent("approve-change", digest[:24], "--yes", "--json"))
    assert consent["digest"] == digest and consent["reported"] is True
    # Reported as given: the controller's log holds the consent before the apply it allows.
    logged = d.json(d.auditor("consent", "log", "--agent", AGENT_ID, "--json"))
    assert any(c["kind"] == "change-approved" and digest in c["reason"] for c in logged)
    applied: dict[str, Any] = d.json(d.engineer("data", "apply", digest, "--json"))
    return applied


def test_preview_consent_apply_undo(deployment_factory: Callable[..., E2E]) -> None:
    e2e = deployment_factory()
    d = e2e.d
    db = d.root / "shop.db"
    _shop(db)
    original = _rows(db)
    d.enable_data(_sources(db))
    granted = e2e.grant_session(scopes=("data.read", "data.write"))

    schema = d.json(d.engineer("data", "describe", "shop", "--json"))
    assert [t["name"] for t in schema["tables"]] == ["customers", "orders"]
    query = d.json(d.engineer("data", "query", "shop", "customers", "--json"))
    assert query["rows"][0]["email"] == "***"

    plan = d.root / "plan.json"
    plan.write_text(json.dumps({
        "updates": [{"table": "orders", "key": {"id": 10}, "set": {"status": "open"},
                     "expect": {"status": "opne"}}],
        "inserts": [{"table": "orders", "row": {"id": 11, "customer_id": 2,
                                                "status": "open", "total": "3.5"}}]}))
    preview = d.json(d.engineer("data", "preview", "shop", "--plan", str(plan), "--json"))
    digest = preview["digest"]
    assert preview["counts"] == {"updates": 1, "inserts": 1, "deletes": 0}
    assert _rows(db) == original  # a preview changes nothing

    refused = d.engineer("data", "apply", digest, check=False)
    assert "permission denied" in one_error_line(refused)  # no consent yet
    assert _consent_and_apply(e2e, digest)["status"] == "applied"
    assert _rows(db)[:2] == [(10, 1, "open", 12.5), (11, 2, "open", 3.5)]

    undo = d.json(d.engineer("data", "undo", digest, "--json"))
    assert undo["undo_of"] == digest and undo["counts"]["deletes"] == 1
    _consent_and_apply(e2e, undo["digest"])
    assert _rows(db) == original
    newest = d.rmagent("changes", "--all", "--limit", "1").stdout  # the undo, then a note
    assert undo["digest"] in newest and digest not in newest
    assert "the 1 newest of 2 changes: --limit 2 shows all" in newest
    assert "expires" not in newest  # applied: it no longer expires

    # Both consents reach the controller's consent log, signed as the customer signed them.
    def change_consents() -> list[dict[str, Any]]:
        log = d.json(d.auditor("consent", "log", "--case", granted.case_id, "--json"))
        return [c for c in log if c["kind"] == "change-approved"]
    wait_until(lambda: len(change_consents()) == 2, "the change consents to be reported")
    signed = [c["envelope"]["statement"]["change_digest"] for c in change_consents()]
    assert signed == [digest, undo["digest"]]
    assert {c["grant_id"] for c in change_consents()} == {granted.grant_id}
    for entry in change_consents():  # the reason names the end as a time, not a count
        until = dt.datetime.fromtimestamp(entry["envelope"]["statement"]["not_after"], dt.UTC)
        assert entry["reason"].endswith(f" until {until.isoformat()}")
    verified = d.auditor("audit", "verify", "--case", granted.case_id, check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr  # in the signed log too

    for path in d.controller_home.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
