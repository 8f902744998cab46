"""Local consent decisions: pinned signer, this agent, and within the pending request."""

from __future__ import annotations

import dataclasses

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

import permissions as p
from agent.consent import verify_denial, verify_grant, verify_revocation
from agent.errors import ConsentRejected, NotFound
from agent.state import REQUEST_TTL, StoredRequest
from tests.unit.agent.conftest import World

NOW = 1000.0


def _stored(world: World, status: str = "pending", received_at: float = 950) -> StoredRequest:
    return StoredRequest(world.request_envelope, world.request, status, received_at)


def _grant_for(world: World, **changes: object) -> p.Envelope:
    grant = dataclasses.replace(world.grant, **changes)  # type: ignore[arg-type]
    return p.sign(p.GRANT, grant.to_payload(), world.approver)


def test_a_matching_grant_is_accepted() -> None:
    world = World()
    assert verify_grant(world.grant_envelope, world.trust, _stored(world), NOW) == world.grant


def test_narrowed_grant_is_accepted() -> None:
    world = World(scopes=("diag.read", "diag.logs"))
    narrowed = p.approve(world.request, world.approver, grant_id="G-2", now=1000,
                         scopes=["diag.logs"], duration_seconds=60)
    assert verify_grant(narrowed, world.trust, _stored(world), NOW).scopes == ("diag.logs",)


def test_grant_by_unpinned_key_is_rejected() -> None:
    world = World()
    rogue = p.approve(world.request, ed25519.Ed25519PrivateKey.generate(), grant_id="G-1",
                      now=1000)
    with pytest.raises(ConsentRejected, match="not accepted"):
        verify_grant(rogue, world.trust, _stored(world), NOW)


@pytest.mark.parametrize(("changes", "message"), [
    ({"case_id": "C-2"}, "another case"),
    ({"engineer": "mallory"}, "another engineer"),
    ({"scopes": ("diag.read", "shell")}, "scopes not asked for"),
    ({"not_after": 1000 + 7200}, "longer duration"),
])
def test_grant_that_does_not_match_the_request_is_rejected(changes: dict[str, object],
                                                           message: str) -> None:
    world = World()
    with pytest.raises(ConsentRejected, match=message):
        verify_grant(_grant_for(world, **changes), world.trust, _stored(world), NOW)


def test_grant_for_another_engineer_key_is_rejected() -> None:
    world = World()
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    envelope = _grant_for(world, engineer_key=p.encode_key(other),
                          engineer_key_id=p.key_id(other))
    with pytest.raises(ConsentRejected, match="another engineer key"):
        verify_grant(envelope, world.trust, _stored(world), NOW)


def test_grant_for_another_agent_is_rejected() -> None:
    world = World()
    with pytest.raises(ConsentRejected, match="for agent db-1"):
        verify_grant(_grant_for(world, agent_id="db-1"), world.trust, _stored(world), NOW)


def test_grant_needs_a_known_pending_request() -> None:
    world = World()
    with pytest.raises(NotFound, match="unknown request R-1"):
        verify_grant(world.grant_envelope, world.trust, None, NOW)
    with pytest.raises(ConsentRejected, match="is denied"):
        verify_grant(world.grant_envelope, world.trust, _stored(world, "denied"), NOW)
    with pytest.raises(ConsentRejected, match="is expired"):
        verify_grant(world.grant_envelope, world.trust, _stored(world),
                     950 + REQUEST_TTL)


def test_denial_and_revocation() -> None:
    world = World()
    denial = p.deny(world.request, world.approver, reason="not now", now=1000)
    assert verify_denial(denial, world.trust, _stored(world), NOW).reason == "not now"
    with pytest.raises(ConsentRejected, match="not a denial"):
        verify_denial(world.grant_envelope, world.trust, _stored(world), NOW)
    assert verify_revocation(world.revocation(), world.trust).grant_id == "G-1"
    with pytest.raises(ConsentRejected, match="not a revocation"):
        verify_revocation(denial, world.trust)
