"""Requests, approvals (with narrowing), denials, revocations and envelopes."""

from __future__ import annotations

import dataclasses

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import given
from hypothesis import strategies as st

import permissions as p
from tests.unit.permissions.conftest import World, make_world

ALL = sorted(p.SCOPES)


def test_request_is_self_signed_and_names_its_key(world: World) -> None:
    assert world.request.engineer_key_id == p.key_id(world.engineer.public_key())
    assert world.request.scopes == ("diag.read",)


def test_request_with_swapped_key_is_refused(world: World) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    envelope = p.request_access(other, request_id="R-1", case_id="C-1", agent_id="web-1",
                                engineer="alice", scopes=["diag.read"], duration_seconds=60,
                                reason="x", now=1)
    stolen = dataclasses.replace(envelope, payload=envelope.payload.replace(
        p.encode_key(other.public_key()).encode(), p.encode_key(world.engineer.public_key()).encode()))
    with pytest.raises(p.BadSignature):
        p.verify_access_request(stolen)


@pytest.mark.parametrize("kwargs,message", [
    ({"scopes": []}, "no scope"),
    ({"scopes": ["root"]}, "unknown scope"),
    ({"duration_seconds": 0}, "duration"),
    ({"duration_seconds": p.MAX_GRANT_SECONDS + 1}, "duration"),
    ({"reason": "  "}, "reason"),
    ({"case_id": "../etc"}, "case_id"),
    # What the customer reads must not move the cursor, add lines or reorder itself.
    ({"reason": "slow\x1b[2A\x1b[G Scopes diag.read"}, "reason holds a control character"),
    ({"reason": "slow site\n  scopes  diag.read"}, "reason holds a control character"),
    ({"reason": "slow \u202egnp.exe"}, "reason holds a control character"),
    ({"reason": "slow\x9b2A"}, "reason holds a control character"),
])
def test_bad_requests_are_refused_before_signing(kwargs: dict[str, object], message: str) -> None:
    base: dict[str, object] = dict(request_id="R-1", case_id="C-1", agent_id="web-1",
                                   engineer="alice", scopes=["diag.read"], duration_seconds=60,
                                   reason="why", now=1)
    base.update(kwargs)
    with pytest.raises(p.MalformedStatement, match=message):
        p.request_access(ec.generate_private_key(ec.SECP256R1()), **base)  # type: ignore[arg-type]


@given(asked=st.sets(st.sampled_from(ALL), min_size=1), extra=st.sets(st.sampled_from(ALL)),
       duration=st.integers(1, 7200))
def test_approval_may_narrow_but_never_widen(asked: set[str], extra: set[str], duration: int) -> None:
    world = make_world(scopes=tuple(asked), duration=3600)
    wanted = asked | extra
    if not extra <= asked or duration > 3600:
        with pytest.raises(p.NarrowingError):
            p.approve(world.request, world.approver, grant_id="G-2", now=5,
                      scopes=wanted, duration_seconds=duration)
        return
    envelope = p.approve(world.request, world.approver, grant_id="G-2", now=5,
                         scopes=wanted, duration_seconds=duration)
    grant = p.verify_grant(envelope, world.trust.approver_keys)
    assert set(grant.scopes) == wanted and grant.not_after - grant.not_before == duration


def test_grant_clock_starts_at_approval_not_request(world: World) -> None:
    grant = p.verify_grant(world.grant_envelope, world.trust.approver_keys)
    assert (grant.not_before, grant.not_after) == (1000, 4600)
    assert grant.engineer_key_id == world.request.engineer_key_id


def test_decisions_verify_only_with_their_own_approver(world: World) -> None:
    grant = p.verify_grant(world.grant_envelope, world.trust.approver_keys)
    for envelope in (p.deny(world.request, world.approver, reason="not now", now=5),
                     p.revoke(grant, world.approver, reason="done", now=6)):
        assert p.verify_decision(envelope, world.trust.approver_keys).approver_key_id
        rogue = ed25519.Ed25519PrivateKey.generate().public_key()
        with pytest.raises(p.BadSignature):
            p.verify_decision(envelope, {p.key_id(rogue): rogue})


def test_decision_claiming_another_approver_is_refused(world: World) -> None:
    second = ed25519.Ed25519PrivateKey.generate()
    keys = {**world.trust.approver_keys, p.key_id(second.public_key()): second.public_key()}
    grant = p.verify_grant(world.grant_envelope, keys)
    forged = dataclasses.replace(grant, approver_key_id=p.key_id(second.public_key()))
    envelope = p.sign(p.GRANT, forged.to_payload(), world.approver)
    with pytest.raises(p.MalformedStatement, match="another approver"):
        p.verify_decision(envelope, keys)


def test_pae_is_length_prefixed() -> None:
    assert p.pae("t", b"ab") == b"DSSEv1 1 t 2 ab"
    assert p.pae("a b", b"") != p.pae("a", b" b")


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400),
                                          ("1h30m", 5400), ("45", 45)])
def test_durations(text: str, seconds: int) -> None:
    assert p.parse_duration(text) == seconds
    assert p.parse_duration(p.format_duration(seconds)) == seconds


@pytest.mark.parametrize("text", ["", "0", "2x", "h", "1h-5m", "-5m", "1.5h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(p.MalformedStatement):
        p.parse_duration(text)


def test_overlong_requests_and_grants_are_malformed(world: World) -> None:
    long_request = dataclasses.replace(world.request, duration_seconds=p.MAX_GRANT_SECONDS + 1)
    with pytest.raises(p.MalformedStatement, match="14-day"):
        p.AccessRequest.from_payload(long_request.to_payload())
    grant = p.verify_grant(world.grant_envelope, world.trust.approver_keys)
    for not_after in (grant.not_before, grant.not_before + p.MAX_GRANT_SECONDS + 1):
        envelope = p.sign(p.GRANT, dataclasses.replace(grant, not_after=not_after).to_payload(),
                          world.approver)
        with pytest.raises(p.MalformedStatement, match="14 days"):
            p.verify_grant(envelope, world.trust.approver_keys)


def test_json_nested_deeper_than_python_recurses_is_malformed() -> None:
    with pytest.raises(p.MalformedStatement, match="nested too deeply"):
        p.peek(b"[" * 100_000 + b"]" * 100_000, "grant_id")


def test_a_reason_keeps_any_script_and_refuses_tabs() -> None:
    reason = "Festplatte fast voll — 磁盘已满 ✓"
    envelope = p.request_access(ec.generate_private_key(ec.SECP256R1()), request_id="R-1",
                                case_id="C-1", agent_id="web-1", engineer="alice",
                                scopes=["diag.read"], duration_seconds=60, reason=reason, now=1)
    assert p.verify_access_request(envelope).reason == reason
    assert not p.is_plain_text("a\tb") and p.is_plain_text(reason)


def test_a_request_signed_before_the_rule_is_read_back_but_not_taken_in_new(world: World) -> None:
    statement = dataclasses.replace(world.request, reason="slow\nscopes  diag.read")
    envelope = p.sign(p.ACCESS_REQUEST, statement.to_payload(), world.engineer)
    assert p.verify_access_request(envelope).reason == statement.reason  # as stored
    with pytest.raises(p.MalformedStatement, match="reason holds a control character"):
        p.verify_access_request(envelope, new=True)
    with pytest.raises(p.MalformedStatement, match="reason holds a control character"):
        p.deny(world.request, world.approver, reason="no\x1b[8m", now=2)
