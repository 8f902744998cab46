"""The real daemon: data operations through its dispatcher, the customer's review and consent
on its local socket (ListChanges, ApproveChange, DenyChange)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from typer.testing import CliRunner, Result

import permissions as p
from agent import config as agent_config
from agent.cli import _decide, app
from agent.data.policy import DataConfig, DataSourcePolicy
from agent.errors import OperationFailed, Refused
from agent.local_client import DaemonRefused, LocalClient
from tests.integration.agent.conftest import Deployment, StartAgent
from tests.integration.agent.data.conftest import SECRET_EMAIL, TABLES, fill

PLAN = {"updates": [{"table": "customers", "key": {"id": 1}, "set": {"credit": 11}}]}


@pytest.fixture
def shop(deployment: Deployment, tmp_path: Path) -> Path:
    source = DataSourcePolicy("shop", "sqlite", TABLES, path=str(tmp_path / "shop.db"))
    fill(source)
    config = agent_config.load(deployment.home)
    agent_config.save(deployment.home, dataclasses.replace(config, data=DataConfig((source,))))
    return tmp_path / "shop.db"


def _consent(deployment: Deployment, change: Any, key: ed25519.Ed25519PrivateKey | None = None,
             consent_id: str = "K-1", **changes: str) -> p.Envelope:
    context = p.ChangeContext(change_digest=change.digest, agent_id=change.agent_id,
                              case_id=change.case_id, grant_id=change.grant_id,
                              engineer_key_id=change.engineer_key_id)
    return p.consent_to_change(dataclasses.replace(context, **changes),
                               key or deployment.approver, consent_id=consent_id,
                               now=int(time.time()), expires_at=change.expires_at)


def _credit(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT credit FROM customers WHERE id = 1").fetchone()[0])


async def _granted(deployment: Deployment, local: LocalClient) -> p.Envelope:
    """Request R-1 for data reads and writes, received and approved here: its grant."""
    request = deployment.request("R-1", scopes=("data.read", "data.write"))
    deployment.receive(request)
    grant = deployment.grant(request)
    await local.approve(grant)
    return grant


async def _previewed(deployment: Deployment, handle: Any, seq: int = 1) -> str:
    """PLAN previewed by the engineer under G-1: its digest."""
    preview = await handle.dispatcher.execute(deployment.operation(
        seq, "data.preview", {"source": "shop", "plan": PLAN}).operation)
    return str(json.loads(preview.result_json)["digest"])


async def test_review_consent_and_apply_through_the_daemon(
        deployment: Deployment, shop: Path, start_agent: StartAgent) -> None:
    handle = await start_agent()
    async with LocalClient(handle.socket) as local:
        await _granted(deployment, local)
        preview = await handle.dispatcher.execute(deployment.operation(
            1, "data.preview", {"source": "shop", "plan": PLAN}).operation)
        digest = json.loads(preview.result_json)["digest"]
        assert SECRET_EMAIL.encode() not in preview.result_json
        [change] = (await local.list_changes(digest_prefix=digest[:20]))[0]
        assert SECRET_EMAIL in change.detail_json  # the customer sees the real values
        with pytest.raises(Refused):  # outward: "permission denied"
            await handle.dispatcher.execute(deployment.operation(
                2, "data.apply", {"digest": digest}).operation)
        stranger = ed25519.Ed25519PrivateKey.generate()
        for bad in (_consent(deployment, change, stranger),
                    _consent(deployment, change, grant_id="G-2")):
            with pytest.raises(DaemonRefused, match="cannot be accepted"):
                await local.approve_change(bad)
        accepted = await local.approve_change(_consent(deployment, change))
        assert accepted.digest == digest
        with pytest.raises(DaemonRefused, match=f"{digest} is consented to already \\(K-1, "):
            await local.approve_change(_consent(deployment, change, consent_id="K-2"))
        applied = await handle.dispatcher.execute(deployment.operation(
            3, "data.apply", {"digest": digest}).operation)
        assert json.loads(applied.result_json)["status"] == "applied"
        assert _credit(shop) == 11
        assert [c.status for c in (await local.list_changes(include_decided=True))[0]] == \
            ["applied"]


async def test_denied_change_cannot_be_consented_or_applied(
        deployment: Deployment, shop: Path, start_agent: StartAgent) -> None:
    handle = await start_agent()
    async with LocalClient(handle.socket) as local:
        await _granted(deployment, local)
        digest = await _previewed(deployment, handle)
        [change] = (await local.list_changes())[0]
        await local.deny_change(digest, "not this one")
        with pytest.raises(DaemonRefused, match="denied"):
            await local.approve_change(_consent(deployment, change))
        assert (await local.list_changes())[0] == []
    assert _credit(shop) == 10


async def test_rmagent_shows_the_change_and_asks_before_it_consents(
        deployment: Deployment, shop: Path, start_agent: StartAgent,
        monkeypatch: pytest.MonkeyPatch) -> None:
    handle = await start_agent()
    runner = CliRunner(env={"COLUMNS": "200"})

    async def rmagent(*args: str, answer: str = "") -> Result:
        return await asyncio.to_thread(runner.invoke, app,
                                       ["--home", str(deployment.home), *args], input=answer)

    assert (await rmagent("approver", "init", "--name", "ops")).exit_code == 0
    async with LocalClient(handle.socket) as local:
        await _granted(deployment, local)
    digest = await _previewed(deployment, handle)
    monkeypatch.setattr(_decide, "interactive", lambda: True)
    declined = await rmagent("approve-change", digest[:20], "--approver", "ops", answer="n\n")
    assert declined.exit_code == 1 and "error: not consented" in declined.output
    assert "credit" in declined.stdout and "10" in declined.stdout  # the rows, before/after
    assert "Consent to exactly this change?" in declined.stdout
    async with LocalClient(handle.socket) as local:
        assert (await local.list_changes())[0][0].status == "pending"
    accepted = await rmagent("approve-change", digest[:20], "--approver", "ops", answer="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert f"consented to {digest}" in accepted.stdout
    applied = await handle.dispatcher.execute(deployment.operation(
        2, "data.apply", {"digest": digest}).operation)
    assert json.loads(applied.result_json)["status"] == "applied" and _credit(shop) == 11


async def test_a_change_under_a_revoked_grant_cannot_be_consented_to(
        deployment: Deployment, shop: Path, start_agent: StartAgent) -> None:
    handle = await start_agent()
    async with LocalClient(handle.socket) as local:
        grant = await _granted(deployment, local)
        [change] = (await local.list_changes(
            digest_prefix=await _previewed(deployment, handle)))[0]
        await local.revoke(p.revoke(p.Grant.from_payload(grant.payload), deployment.approver,
                                    reason="done", now=int(time.time())))
        with pytest.raises(DaemonRefused, match="grant G-1 was revoked: it can no longer"):
            await local.approve_change(_consent(deployment, change))
    assert _credit(shop) == 10


async def test_a_denial_holds_when_the_same_change_is_previewed_again(
        deployment: Deployment, shop: Path, start_agent: StartAgent) -> None:
    handle = await start_agent()
    async with LocalClient(handle.socket) as local:
        await _granted(deployment, local)

        async def preview(seq: int) -> Any:
            digest = await _previewed(deployment, handle, seq)
            [change] = (await local.list_changes(digest_prefix=digest))[0]
            return change

        change = await preview(1)
        await local.approve_change(_consent(deployment, change))  # approved, then ...
        await local.deny_change(change.digest, "changed my mind")  # ... denied, unused
        again = await preview(2)  # the engineer asks anew: another change to consent to
        assert again.digest != change.digest
        for seq, digest in ((3, change.digest), (4, again.digest)):  # denied; no consent
            with pytest.raises((Refused, OperationFailed)):
                await handle.dispatcher.execute(deployment.operation(
                    seq, "data.apply", {"digest": digest}).operation)
        assert _credit(shop) == 10
        await local.approve_change(_consent(deployment, again, consent_id="K-2"))
        await handle.dispatcher.execute(deployment.operation(
            5, "data.apply", {"digest": again.digest}).operation)
    assert _credit(shop) == 11


async def test_the_review_of_many_large_changes_reaches_the_customer_whole(
        deployment: Deployment, shop: Path, start_agent: StartAgent) -> None:
    from agent.changes import CHANGES_NAME, ChangeStore, StoredPreview

    handle = await start_agent()
    now = time.time()
    store = ChangeStore(deployment.home / CHANGES_NAME)  # as the daemon's previews store them
    try:
        for n in range(12):  # about 7 MiB in all: over the network's 4 MiB per message
            store.add_preview(StoredPreview(
                digest=f"sha256:{n:064x}", source="app", undo_of=None,
                plan={"changes": [], "diff": "+" + "x" * 600_000 + "\n"}, schema_fp="",
                images={}, agent_id="web-1", case_id="C-0001", grant_id="G-1",
                session_id="S-1", engineer="alice", engineer_key_id="sha256:" + "ab" * 32,
                created_at=now + n, expires_at=now + 600, kind="config"))
    finally:
        store.close()
    async with LocalClient(handle.socket) as local:
        assert len((await local.list_changes())[0]) == 12
        # Newest first, at most the limit, and how many there are.
        newest, total = await local.list_changes(include_decided=True, limit=5)
        assert total == 12 and len(newest) == 5
        assert [c.digest for c in newest] == [f"sha256:{n:064x}" for n in range(11, 6, -1)]
