"""Consent to one exact change: the customer signs the digest of a preview.

A :class:`ChangeConsent` names the change by its digest (``sha256:<hex>`` over the
preview's plan, schema and images) and binds it to one agent, case, grant and engineer
key, for a short window. It is signed on the customer side by a pinned approver key
(Ed25519) and checked by :func:`verify_change_consent`, which is pure: time is a
parameter. Whether a consent was already used is the agent's durable state, not ours.

    PermissionsError
    └── ChangeConsentInvalid   the consent does not allow this change now (``reason`` says why)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Self

from cryptography.hazmat.primitives.asymmetric import ed25519

from permissions._codec import Reader
from permissions._errors import MalformedStatement, PermissionsError
from permissions.envelope import Envelope, PublicKey, key_id, sign, verify_signer
from permissions.statements import _Statement

CHANGE_CONSENT = "application/vnd.rmaint.change-consent.v1+json"
DEFAULT_CHANGE_CONSENT_SECONDS = 10 * 60
MAX_CHANGE_CONSENT_SECONDS = 60 * 60
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class ChangeConsentInvalid(PermissionsError):
    """A change consent that does not allow this change now; ``reason`` is for the audit."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ChangeConsent(_Statement):
    """The customer's consent to the change whose digest is ``change_digest``."""

    payload_type: ClassVar[str] = CHANGE_CONSENT
    consent_id: str
    change_digest: str
    agent_id: str
    case_id: str
    grant_id: str
    engineer_key_id: str
    not_before: int
    not_after: int
    approver_key_id: str

    @classmethod
    def from_payload(cls, payload: bytes) -> Self:
        r = Reader(payload, "change consent")
        consent = cls(
            consent_id=r.id("consent_id"), change_digest=r.text("change_digest", 80),
            agent_id=r.id("agent_id"), case_id=r.id("case_id"), grant_id=r.id("grant_id"),
            engineer_key_id=r.id("engineer_key_id"), not_before=r.int("not_before"),
            not_after=r.int("not_after"), approver_key_id=r.id("approver_key_id"),
        )
        _check_shape(consent)
        return consent


@dataclass(frozen=True)
class ChangeContext:
    """What the change is and who may apply it: the values a consent must name."""

    change_digest: str
    agent_id: str
    case_id: str
    grant_id: str
    engineer_key_id: str


def consent_to_change(
    context: ChangeContext, key: ed25519.Ed25519PrivateKey, *, consent_id: str, now: int,
    seconds: int = DEFAULT_CHANGE_CONSENT_SECONDS, expires_at: int | None = None,
) -> Envelope:
    """A consent signed by ``key``, valid from ``now`` for ``seconds``, never past ``expires_at``."""
    not_after = now + seconds if expires_at is None else min(now + seconds, expires_at)
    consent = ChangeConsent(
        consent_id=consent_id, change_digest=context.change_digest, agent_id=context.agent_id,
        case_id=context.case_id, grant_id=context.grant_id,
        engineer_key_id=context.engineer_key_id, not_before=now, not_after=not_after,
        approver_key_id=key_id(key.public_key()),
    )
    ChangeConsent.from_payload(consent.to_payload())  # refuse here what the agent would refuse
    return sign(CHANGE_CONSENT, consent.to_payload(), key)


def open_change_consent(envelope: Envelope,
                        approver_keys: Mapping[str, PublicKey]) -> ChangeConsent:
    """The consent, if well formed and signed by the key it names among ``approver_keys``.

    Checks nothing about the change or the time: that is :func:`verify_change_consent`'s
    (the agent's) job; a recorder of consents (the controller) needs only this.
    Raises ChangeConsentInvalid (``malformed``, ``bad-signature``, ``wrong-signer``).
    """
    try:
        payload, signer = verify_signer(envelope, CHANGE_CONSENT, approver_keys)
        consent = ChangeConsent.from_payload(payload)
    except MalformedStatement as exc:
        raise ChangeConsentInvalid("malformed") from exc
    except PermissionsError as exc:
        raise ChangeConsentInvalid("bad-signature") from exc
    if consent.approver_key_id != signer:
        raise ChangeConsentInvalid("wrong-signer")
    return consent


def verify_change_consent(envelope: Envelope, approver_keys: Mapping[str, PublicKey],
                          context: ChangeContext, *, now: int) -> ChangeConsent:
    """The consent, if a pinned key signed it for exactly ``context`` and ``now`` is in its window.

    Raises ChangeConsentInvalid (its ``reason`` one of ``malformed``, ``bad-signature``,
    ``wrong-signer``, ``wrong-<field>``, ``not-yet-valid``, ``expired``); deny by default.
    """
    consent = open_change_consent(envelope, approver_keys)
    for name in ("change_digest", "agent_id", "case_id", "grant_id", "engineer_key_id"):
        if getattr(consent, name) != getattr(context, name):
            raise ChangeConsentInvalid(f"wrong-{name.replace('_', '-')}")
    if now < consent.not_before:
        raise ChangeConsentInvalid("not-yet-valid")
    if now >= consent.not_after:
        raise ChangeConsentInvalid("expired")
    return consent


def _check_shape(consent: ChangeConsent) -> None:
    if not _DIGEST.fullmatch(consent.change_digest):
        raise MalformedStatement("change consent: change_digest is not sha256:<64 hex>")
    if not 0 < consent.not_after - consent.not_before <= MAX_CHANGE_CONSENT_SECONDS:
        raise MalformedStatement("change consent: validity must be positive and at most 1 h")
