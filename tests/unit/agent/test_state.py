"""Local state: requests, grants, revocations and the outbox, durable and idempotent."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

import permissions as p
from agent import config as c
from agent.errors import ConsentRejected
from agent.state import REQUEST_TTL, StateStore
from agent.trust import PinnedTrust
from tests.unit.agent.conftest import World


def test_request_grant_revocation_and_outbox(tmp_path: Path) -> None:
    world = World()
    state = StateStore(tmp_path / "state.db")
    try:
        assert state.add_request(world.request_envelope, world.request, 950)
        assert not state.add_request(world.request_envelope, world.request, 960)
        [stored] = state.list_requests()
        assert stored.envelope == world.request_envelope and stored.status_at(1000) == "pending"
        assert stored.status_at(950 + REQUEST_TTL) == "expired"

        assert state.store_grant(world.grant_envelope, world.grant, 1000)
        assert not state.store_grant(world.grant_envelope, world.grant, 1001)
        assert state.get_request("R-1").status == "approved"  # type: ignore[union-attr]
        grant = state.get_grant("G-1")
        assert grant is not None and grant.status_at(1100) == "active"
        assert grant.status_at(999) == "not-yet-valid" and grant.status_at(4600) == "expired"

        assert state.store_revocation(world.revocation(), p.Revocation.from_payload(
            world.revocation().payload), 1200)
        assert state.revoked_ids() == {"G-1"}
        assert state.get_grant("G-1").status_at(1300) == "revoked"  # type: ignore[union-attr]

        items = state.pending_reports()
        assert [i.kind for i in items] == ["grant", "revocation"]
        assert items[0].envelope == world.grant_envelope
        state.note_report_failure(items[0].id, "UNAVAILABLE: down")
        state.mark_reported(items[0].id, 1300)
        assert state.is_reported(world.grant_envelope)
        assert state.unreported_count() == 1
    finally:
        state.close()


def test_state_persists_across_reopen(tmp_path: Path) -> None:
    world = World()
    state = StateStore(tmp_path / "state.db")
    state.add_request(world.request_envelope, world.request, 950)
    state.store_grant(world.grant_envelope, world.grant, 1000)
    state.close()
    again = StateStore(tmp_path / "state.db")
    try:
        assert again.get_grant("G-1").envelope == world.grant_envelope  # type: ignore[union-attr]
        assert again.unreported_count() == 1
    finally:
        again.close()


def test_pinned_trust_follows_agent_toml_and_fails_closed(tmp_path: Path) -> None:
    c.save(tmp_path, c.AgentConfig(id="web-1", trust_domain="example.test"))
    trust = PinnedTrust(tmp_path, "web-1")
    assert trust.current().approver_keys == {}
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    pin = c.pin_approver(tmp_path, "alice", key)
    assert set(trust.current().approver_keys) == {pin.key_id}
    (tmp_path / "agent.toml").write_text("[agent\n")
    assert trust.current().approver_keys == {}


def test_a_request_is_decided_once(tmp_path: Path) -> None:
    """Approve, approve (another grant), deny: the first wins, the others change nothing."""
    world = World()
    state = StateStore(tmp_path / "state.db")
    try:
        state.add_request(world.request_envelope, world.request, 950)
        assert state.store_grant(world.grant_envelope, world.grant, 1000)
        rival = p.approve(world.request, world.approver, grant_id="G-2", now=1001)
        with pytest.raises(ConsentRejected, match="request R-1 is no longer pending"):
            state.store_grant(rival, p.verify_grant(rival, world.trust.approver_keys), 1001)
        denial = p.deny(world.request, world.approver, reason="no", now=1002)
        with pytest.raises(ConsentRejected, match="request R-1 is no longer pending"):
            state.store_denial(denial, p.Denial.from_payload(denial.payload), 1002)
        assert state.get_request("R-1").status == "approved"  # type: ignore[union-attr]
        assert [g.grant.grant_id for g in state.list_grants()] == ["G-1"]
        assert [i.kind for i in state.pending_reports()] == ["grant"]
    finally:
        state.close()


def test_an_expired_request_cannot_be_decided(tmp_path: Path) -> None:
    world = World()
    state = StateStore(tmp_path / "state.db")
    try:
        state.add_request(world.request_envelope, world.request, 950)
        denial = p.deny(world.request, world.approver, reason="late", now=950 + REQUEST_TTL)
        with pytest.raises(ConsentRejected, match="no longer pending"):
            state.store_denial(denial, p.Denial.from_payload(denial.payload), 950 + REQUEST_TTL)
        assert state.unreported_count() == 0
    finally:
        state.close()
