"""Local state: requests, grants, revocations and the outbox, durable and idempotent."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

import permissions as p
from agent import config as c
from agent.errors import ConsentRejected
from agent.state import REQUEST_TTL, KeyChanged, KeyConflict, PinnedKey, StateStore, key_changed
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


def _request_by(world: World, key: ec.EllipticCurvePrivateKey, request_id: str,
                grant_id: str, engineer: str = "alice"
                ) -> tuple[p.Envelope, p.AccessRequest, p.Envelope, p.Grant]:
    """A request of ``engineer`` signed by ``key``, and the customer's grant for it."""
    envelope = p.request_access(key, request_id=request_id, case_id="C-1", agent_id="web-1",
                                engineer=engineer, scopes=("diag.read",),
                                duration_seconds=3600, reason="again", now=900)
    request = p.verify_access_request(envelope)
    grant_envelope = p.approve(request, world.approver, grant_id=grant_id, now=1000)
    return (envelope, request, grant_envelope,
            p.verify_grant(grant_envelope, world.trust.approver_keys))


def test_the_first_approval_pins_the_engineer_key(tmp_path: Path) -> None:
    world = World()
    state = StateStore(tmp_path / "state.db")
    try:
        assert state.engineer_keys() == []
        state.add_request(world.request_envelope, world.request, 950)
        assert state.store_grant(world.grant_envelope, world.grant, 1000, approver="ops")
        assert state.engineer_keys() == [PinnedKey(
            "alice", world.request.engineer_key_id, 1000, world.grant.approver_key_id, "ops",
            "R-1", "G-1")]
        # Another request signed by the same key is not a change, and pins nothing new.
        envelope, request, grant_envelope, grant = world.another_grant()
        state.add_request(envelope, request, 960)
        assert not key_changed(request, state.engineer_keys("alice"))
        assert state.store_grant(grant_envelope, grant, 1010)
        assert len(state.engineer_keys()) == 1
    finally:
        state.close()


def test_rival_keys_for_an_unpinned_engineer_are_refused_unless_accepted(tmp_path: Path) -> None:
    world = World()
    state = StateStore(tmp_path / "state.db")
    try:
        # Two pending requests in alice's name, no key pinned yet, signed by different keys:
        # approving either would pin whichever key it carries.
        state.add_request(world.request_envelope, world.request, 950)
        other = ec.generate_private_key(ec.SECP256R1())
        envelope, request, grant_envelope, grant = _request_by(world, other, "R-2", "G-2")
        state.add_request(envelope, request, 960)
        with pytest.raises(KeyConflict, match="KEY CONFLICT") as refused:
            state.store_grant(grant_envelope, grant, 1000)
        assert world.request.engineer_key_id in str(refused.value)
        assert state.engineer_keys() == [] and state.get_grant("G-2") is None
        assert state.get_request("R-2").status == "pending"  # type: ignore[union-attr]
        # Once the customer denies the rival, or accepts the key explicitly, it goes through.
        assert state.store_grant(grant_envelope, grant, 1000, accept_new_key=True)
        assert [k.key_id for k in state.engineer_keys()] == [request.engineer_key_id]
        # A rival that expired unanswered does not block: it can no longer be approved.
        world2 = World()
        state2 = StateStore(tmp_path / "state2.db")
        try:
            state2.add_request(world2.request_envelope, world2.request, 0)
            e2, r2, g2e, g2 = _request_by(world2, other, "R-2", "G-2")
            state2.add_request(e2, r2, 960)
            assert state2.store_grant(g2e, g2, REQUEST_TTL + 1)
        finally:
            state2.close()
    finally:
        state.close()


def test_a_changed_key_is_refused_unless_accepted(tmp_path: Path) -> None:
    world = World()
    state = StateStore(tmp_path / "state.db")
    try:
        state.add_request(world.request_envelope, world.request, 950)
        state.store_grant(world.grant_envelope, world.grant, 1000, approver="ops")
        other = ec.generate_private_key(ec.SECP256R1())
        envelope, request, grant_envelope, grant = _request_by(world, other, "R-2", "G-2")
        assert state.add_request(envelope, request, 1050)
        assert key_changed(request, state.engineer_keys())
        assert state.get_request("R-2").status == "pending"  # type: ignore[union-attr]
        with pytest.raises(KeyChanged, match="KEY CHANGED: alice's key was "
                           + world.request.engineer_key_id) as refused:
            state.store_grant(grant_envelope, grant, 1100)
        assert isinstance(refused.value, ConsentRejected)
        assert request.engineer_key_id in str(refused.value)
        # Nothing changed: no grant, no report, no pin, the request still pending.
        assert state.get_grant("G-2") is None
        assert state.get_request("R-2").status == "pending"  # type: ignore[union-attr]
        assert [i.kind for i in state.pending_reports()] == ["grant"]
        assert [k.key_id for k in state.engineer_keys()] == [world.request.engineer_key_id]

        assert state.store_grant(grant_envelope, grant, 1100, accept_new_key=True,
                                 approver="boss")
        pins = state.engineer_keys("alice")
        assert [(k.key_id, k.approver, k.request_id, k.pinned_at) for k in pins] == [
            (world.request.engineer_key_id, "ops", "R-1", 1000),
            (request.engineer_key_id, "boss", "R-2", 1100)]
        assert not key_changed(request, pins)
        # Another engineer name is pinned on its own.
        _, bob_request, _, _ = _request_by(world, other, "R-3", "G-3", engineer="bob")
        assert not key_changed(bob_request, state.engineer_keys())
    finally:
        state.close()


def test_pins_persist_and_forgetting_is_final(tmp_path: Path) -> None:
    world = World()
    state = StateStore(tmp_path / "state.db")
    state.add_request(world.request_envelope, world.request, 950)
    state.store_grant(world.grant_envelope, world.grant, 1000)
    state.close()
    state = StateStore(tmp_path / "state.db")
    try:
        [pin] = state.engineer_keys()
        assert pin.key_id == world.request.engineer_key_id and pin.grant_id == "G-1"
        assert state.forget_engineer_keys("bob") == []
        assert state.forget_engineer_keys("alice", "sha256:00") == []
        assert state.forget_engineer_keys("alice") == [pin]
        assert state.engineer_keys() == []
    finally:
        state.close()
    # Forgotten stays forgotten: the grants held are not pinned again on reopening.
    state = StateStore(tmp_path / "state.db")
    try:
        assert state.engineer_keys() == []
        other = ec.generate_private_key(ec.SECP256R1())
        envelope, request, grant_envelope, grant = _request_by(world, other, "R-2", "G-2")
        state.add_request(envelope, request, 1050)
        assert not key_changed(request, state.engineer_keys())
        assert state.store_grant(grant_envelope, grant, 1100)  # pins afresh
        assert [k.key_id for k in state.engineer_keys()] == [request.engineer_key_id]
        assert state.get_grant("G-1") is not None  # the old grant is untouched
    finally:
        state.close()


def test_a_database_from_before_pinning_pins_the_keys_of_its_grants(tmp_path: Path) -> None:
    world = World()
    path = tmp_path / "state.db"
    state = StateStore(path)
    state.add_request(world.request_envelope, world.request, 950)
    state.store_grant(world.grant_envelope, world.grant, 1000)
    state.close()
    with sqlite3.connect(path) as conn:  # as an agent of the previous version left it
        conn.execute("DROP TABLE engineer_keys")
        conn.execute("PRAGMA user_version = 0")
    conn.close()
    state = StateStore(path)
    try:
        assert state.engineer_keys() == [PinnedKey(
            "alice", world.request.engineer_key_id, 1000, world.grant.approver_key_id, "",
            "R-1", "G-1")]
    finally:
        state.close()
