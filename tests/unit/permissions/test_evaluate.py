"""Every reason the agent refuses an operation, and the one way it allows one."""

from __future__ import annotations

import dataclasses

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import given
from hypothesis import strategies as st

import permissions as p
from tests.unit.permissions.conftest import World, make_world

Reason = p.Reason


def test_allows_a_well_formed_operation(world: World) -> None:
    decision = world.decide(world.op())
    assert decision.allowed and decision.reason is None
    assert decision.grant is not None and decision.grant.grant_id == "G-1"
    assert decision.operation is not None and decision.operation.seq == 1


def test_grant_payload_tampered_after_signing(world: World) -> None:
    forged = world.grant_envelope.payload.replace(b'"diag.read"', b'"data.write"')
    assert forged != world.grant_envelope.payload
    grant = dataclasses.replace(world.grant_envelope, payload=forged)
    assert world.decide(world.op(operation="data.apply"), grant=grant).reason is Reason.GRANT_SIGNATURE


def test_grant_signed_by_unpinned_key(world: World) -> None:
    rogue = ed25519.Ed25519PrivateKey.generate()
    grant = p.approve(world.request, rogue, grant_id="G-1", now=1000)
    assert world.decide(world.op(), grant=grant).reason is Reason.GRANT_SIGNATURE


def test_expired_and_not_yet_valid(world: World) -> None:
    assert world.decide(world.op(issued_at=4600), now=4600).reason is Reason.EXPIRED
    assert world.decide(world.op(issued_at=999), now=999).reason is Reason.NOT_YET_VALID
    assert world.decide(world.op(issued_at=4599), now=4599).allowed


def test_operation_issued_too_long_ago_or_ahead(world: World) -> None:
    assert world.decide(world.op(issued_at=1100), now=1100 + 301).reason is Reason.STALE
    assert world.decide(world.op(issued_at=1500), now=1100).reason is Reason.STALE
    assert world.decide(world.op(issued_at=1100), now=1100 + 300).allowed


def test_operation_for_another_agent_or_case(world: World) -> None:
    assert world.decide(world.op(agent_id="db-1")).reason is Reason.WRONG_AGENT
    assert world.decide(world.op(case_id="C-2")).reason is Reason.WRONG_CASE


def test_grant_for_another_agent(world: World) -> None:
    other = p.AgentTrust("db-1", world.trust.approver_keys)
    decision = p.evaluate(grant_envelope=world.grant_envelope, operation_envelope=world.op(),
                          trust=other, scope_of=lambda _: "diag.read", last_seq=None,
                          revoked=frozenset(), now=1100)
    assert decision.reason is Reason.WRONG_AGENT


def test_scope_missing_and_unknown_operation(world: World) -> None:
    assert world.decide(world.op(operation="data.apply")).reason is Reason.SCOPE_MISSING
    assert world.decide(world.op(operation="rm.everything")).reason is Reason.UNKNOWN_OPERATION


def test_engineer_key_not_the_one_named(world: World) -> None:
    intruder = ec.generate_private_key(ec.SECP256R1())
    assert world.decide(world.op(key=intruder)).reason is Reason.ENGINEER_SIGNATURE


def test_operation_naming_another_grant(world: World) -> None:
    assert world.decide(world.op(grant_id="G-2")).reason is Reason.GRANT_MISMATCH


def test_replayed_or_backwards_sequence(world: World) -> None:
    assert world.decide(world.op(5), last_seq=5).reason is Reason.REPLAY
    assert world.decide(world.op(4), last_seq=5).reason is Reason.REPLAY
    assert world.decide(world.op(6), last_seq=5).allowed


def test_revoked(world: World) -> None:
    assert world.decide(world.op(), revoked=frozenset({"G-1"})).reason is Reason.REVOKED


def test_operation_envelope_of_wrong_type(world: World) -> None:
    op = world.op()
    relabelled = dataclasses.replace(op, payload_type=p.GRANT)
    assert world.decide(relabelled).reason is Reason.ENGINEER_SIGNATURE


def test_denial_carries_verified_context_for_the_audit_log(world: World) -> None:
    decision = world.decide(world.op(operation="data.apply"))
    assert decision.grant is not None and decision.operation is not None
    assert "data.write" in decision.detail


@given(now=st.integers(min_value=0, max_value=10_000), seq=st.integers(1, 50),
       last=st.one_of(st.none(), st.integers(1, 50)))
def test_allowed_exactly_inside_the_window_with_increasing_seq(now: int, seq: int, last: int | None) -> None:
    world = WORLD
    decision = world.decide(world.op(seq, issued_at=now), now=now, last_seq=last)
    expected = 1000 <= now < 4600 and (last is None or seq > last)
    assert decision.allowed is expected


@given(index=st.integers(min_value=0), bit=st.integers(0, 7))
def test_any_bit_flip_in_the_grant_payload_is_refused(index: int, bit: int) -> None:
    world = WORLD
    payload = bytearray(world.grant_envelope.payload)
    payload[index % len(payload)] ^= 1 << bit
    grant = dataclasses.replace(world.grant_envelope, payload=bytes(payload))
    assert not world.decide(world.op(), grant=grant).allowed


@given(payload=st.binary(max_size=512), kind=st.sampled_from([p.OPERATION, p.GRANT, "x"]))
def test_garbage_operations_are_denied_never_raised(payload: bytes, kind: str) -> None:
    world = WORLD
    junk = p.Envelope(kind, payload, (p.Signature("sha256:00", b"\x00" * 64),))
    assert not world.decide(junk).allowed


WORLD = make_world()
