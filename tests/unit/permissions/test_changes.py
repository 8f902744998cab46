"""Change consent: signed by a pinned approver for one exact digest, agent, case, grant, key."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given
from hypothesis import strategies as st

import permissions as p

APPROVER = ed25519.Ed25519PrivateKey.generate()
KEYS = {p.key_id(APPROVER.public_key()): APPROVER.public_key()}
CONTEXT = p.ChangeContext(change_digest="sha256:" + hashlib.sha256(b"plan").hexdigest(),
                          agent_id="web-1", case_id="C-1", grant_id="G-1",
                          engineer_key_id="sha256:" + "ab" * 32)


def _consent(**kwargs: object) -> p.Envelope:
    args: dict[str, object] = {"consent_id": "K-1", "now": 1000} | kwargs
    return p.consent_to_change(CONTEXT, APPROVER, **args)  # type: ignore[arg-type]


def test_consent_verifies_for_its_exact_change_inside_its_window() -> None:
    consent = p.verify_change_consent(_consent(), KEYS, CONTEXT, now=1000)
    assert consent.change_digest == CONTEXT.change_digest
    assert consent.not_after == 1000 + p.DEFAULT_CHANGE_CONSENT_SECONDS
    assert consent.approver_key_id == p.key_id(APPROVER.public_key())


@pytest.mark.parametrize("now,reason", [(999, "not-yet-valid"), (1600, "expired"),
                                        (10**9, "expired")])
def test_consent_outside_its_window_is_refused(now: int, reason: str) -> None:
    with pytest.raises(p.ChangeConsentInvalid) as caught:
        p.verify_change_consent(_consent(), KEYS, CONTEXT, now=now)
    assert caught.value.reason == reason


def test_consent_never_outlives_the_preview() -> None:
    consent = p.verify_change_consent(_consent(expires_at=1200), KEYS, CONTEXT, now=1100)
    assert consent.not_after == 1200
    with pytest.raises(p.ChangeConsentInvalid, match="expired"):
        p.verify_change_consent(_consent(expires_at=1200), KEYS, CONTEXT, now=1200)


@pytest.mark.parametrize("field", ["change_digest", "agent_id", "case_id", "grant_id",
                                   "engineer_key_id"])
def test_consent_for_another_change_or_context_is_refused(field: str) -> None:
    value = "sha256:" + "0" * 64 if field in ("change_digest", "engineer_key_id") else "other"
    other = dataclasses.replace(CONTEXT, **{field: value})
    with pytest.raises(p.ChangeConsentInvalid) as caught:
        p.verify_change_consent(_consent(), KEYS, other, now=1000)
    assert caught.value.reason == "wrong-" + field.replace("_", "-")


def test_consent_signed_by_an_unpinned_key_is_refused() -> None:
    stranger = ed25519.Ed25519PrivateKey.generate()
    envelope = p.consent_to_change(CONTEXT, stranger, consent_id="K-1", now=1000)
    with pytest.raises(p.ChangeConsentInvalid, match="bad-signature"):
        p.verify_change_consent(envelope, KEYS, CONTEXT, now=1000)


def test_another_statement_type_is_not_a_change_consent() -> None:
    envelope = _consent()
    relabelled = dataclasses.replace(envelope, payload_type=p.GRANT)
    with pytest.raises(p.ChangeConsentInvalid, match="malformed"):
        p.verify_change_consent(relabelled, KEYS, CONTEXT, now=1000)


def test_a_window_over_an_hour_cannot_be_signed() -> None:
    with pytest.raises(p.MalformedStatement, match="validity"):
        _consent(seconds=3601)
    with pytest.raises(p.MalformedStatement, match="validity"):
        _consent(expires_at=1000)


@given(st.binary(min_size=1, max_size=64), st.integers(min_value=0, max_value=400))
def test_any_altered_payload_byte_is_refused(noise: bytes, at: int) -> None:
    envelope = _consent()
    payload = bytearray(envelope.payload)
    index = at % len(payload)
    payload[index] ^= noise[0] or 1
    altered = dataclasses.replace(envelope, payload=bytes(payload))
    with pytest.raises(p.ChangeConsentInvalid):
        p.verify_change_consent(altered, KEYS, CONTEXT, now=1000)


@given(st.integers(min_value=-(2**40), max_value=2**40))
def test_verdict_depends_on_time_only_through_the_window(now: int) -> None:
    envelope = _consent()
    inside = 1000 <= now < 1000 + p.DEFAULT_CHANGE_CONSENT_SECONDS
    try:
        p.verify_change_consent(envelope, KEYS, CONTEXT, now=now)
    except p.ChangeConsentInvalid:
        assert not inside
    else:
        assert inside


def test_opening_a_consent_checks_only_its_signature_and_shape() -> None:
    """What the controller checks before recording a consent: a pinned key signed it."""
    key = ed25519.Ed25519PrivateKey.generate()
    context = p.ChangeContext(change_digest="sha256:" + "ab" * 32, agent_id="web-1",
                              case_id="C-1", grant_id="G-1", engineer_key_id="sha256:" + "cd" * 32)
    envelope = p.consent_to_change(context, key, consent_id="K-1", now=1_800_000_000)
    keys = {p.key_id(key.public_key()): key.public_key()}
    assert p.open_change_consent(envelope, keys).change_digest == context.change_digest
    other = ed25519.Ed25519PrivateKey.generate().public_key()
    with pytest.raises(p.ChangeConsentInvalid) as refused:
        p.open_change_consent(envelope, {p.key_id(other): other})
    assert refused.value.reason == "bad-signature"
