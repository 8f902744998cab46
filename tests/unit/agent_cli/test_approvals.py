"""Customer-side signing: narrowing only, and decisions that verify against the pins."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

import permissions as p
from agent.approvals import (
    ApprovalError,
    ApproverUnavailable,
    Widening,
    choose_approver,
    create_approver,
    load_approver_key,
    new_grant_id,
    plan_grant,
    sign_denial,
    sign_revocation,
)
from agent.config import AgentPaths, PinnedApprover, load
from pki.files import write_key

from .conftest import signed_request


def _request(scopes: tuple[str, ...] = ("diag.logs", "diag.read"),
             duration: int = 7200) -> p.AccessRequest:
    return p.verify_access_request(signed_request(scopes=scopes, duration=duration))


@pytest.mark.parametrize(("scopes", "duration", "message"), [
    (("shell",), None, "did not ask for: shell"),
    (("diag.read", "data.write"), None, "did not ask for: data.write"),
    ((), 7201, "the request asked for 2h"),
    (("diag.read",), 86400, "cannot grant 1d"),
    ((), 0, "positive"),
])
def test_widening_is_refused(scopes: tuple[str, ...], duration: int | None,
                             message: str) -> None:
    with pytest.raises(Widening, match=message):
        plan_grant(_request(), scopes=scopes, duration_seconds=duration)


def test_unknown_scope_is_refused() -> None:
    with pytest.raises(p.MalformedStatement, match="unknown scope"):
        plan_grant(_request(), scopes=("diag.everything",))


def test_narrowed_grant_verifies_with_the_pinned_key() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    plan = plan_grant(_request(), scopes=("diag.read",), duration_seconds=1800)
    envelope = plan.sign(key, now=1000)
    grant = p.verify_decision(envelope, {p.key_id(key.public_key()): key.public_key()})
    assert isinstance(grant, p.Grant)
    assert grant.scopes == ("diag.read",)
    assert (grant.not_before, grant.not_after) == (1000, 2800)
    assert re.fullmatch(r"G-[0-9a-f]{12}", grant.grant_id)


def test_unnarrowed_grant_keeps_what_was_asked() -> None:
    plan = plan_grant(_request())
    assert plan.scopes == ("diag.logs", "diag.read") and plan.duration_seconds == 7200


def test_grant_does_not_verify_with_another_key() -> None:
    key, other = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    envelope = plan_grant(_request()).sign(key, now=1000)
    with pytest.raises(p.BadSignature):
        p.verify_decision(envelope, {p.key_id(other.public_key()): other.public_key()})


def test_denial_and_revocation_round_trip() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    pins = {p.key_id(key.public_key()): key.public_key()}
    request = _request()
    denial = p.verify_decision(sign_denial(request, key, reason=" no ", now=5), pins)
    assert isinstance(denial, p.Denial) and denial.reason == "no"
    grant = p.verify_decision(plan_grant(request).sign(key, now=5), pins)
    assert isinstance(grant, p.Grant)
    revocation = p.verify_decision(sign_revocation(grant, key, reason="", now=9), pins)
    assert isinstance(revocation, p.Revocation)
    assert (revocation.grant_id, revocation.reason) == (grant.grant_id, "revoked by the customer")


def test_denial_needs_a_reason_that_fits() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(ApprovalError, match="reason is required"):
        sign_denial(_request(), key, reason="  ", now=5)
    with pytest.raises(ApprovalError, match="too long"):
        sign_denial(_request(), key, reason="x" * 5000, now=5)


def test_grant_ids_use_the_given_randomness() -> None:
    assert new_grant_id(lambda n: "ab" * n) == "G-abababababab"


def _pin(name: str) -> PinnedApprover:
    return PinnedApprover.of(name, ed25519.Ed25519PrivateKey.generate().public_key())


def test_choose_approver() -> None:
    one, two = _pin("ops"), _pin("boss")
    assert choose_approver([one], None) == one
    assert choose_approver([one, two], "boss") == two
    with pytest.raises(ApproverUnavailable, match=r"several approvers are pinned \(ops, boss\)"):
        choose_approver([one, two], None)
    with pytest.raises(ApproverUnavailable, match="no approver is pinned"):
        choose_approver([], None)
    with pytest.raises(ApproverUnavailable, match="no approver named 'x'"):
        choose_approver([one], "x")


def test_key_file_must_hold_the_pinned_key(home: Path) -> None:
    paths = AgentPaths(home)
    pin, path = create_approver(paths, "ops")
    assert load_approver_key(paths, pin).public_key() is not None
    write_key(path, ed25519.Ed25519PrivateKey.generate())
    with pytest.raises(ApproverUnavailable, match="does not hold the key pinned"):
        load_approver_key(paths, pin)
    path.unlink()
    with pytest.raises(ApproverUnavailable, match="not on this host"):
        load_approver_key(paths, pin)
    assert load(home).approvers == (pin,)
