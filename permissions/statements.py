"""The signed statements of the consent flow, as frozen values with a canonical encoding.

Each statement travels as the payload of an :class:`~permissions.envelope.Envelope`;
``from_payload`` reads bytes whose signature has already been verified.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Self

from permissions._codec import Reader, canonical
from permissions._errors import MalformedStatement
from permissions.envelope import PublicKey, key_id, load_public_key, public_key_bytes
from permissions.scopes import parse_scopes

ACCESS_REQUEST = "application/vnd.rmaint.access-request.v1+json"
GRANT = "application/vnd.rmaint.grant.v1+json"
DENIAL = "application/vnd.rmaint.denial.v1+json"
REVOCATION = "application/vnd.rmaint.revocation.v1+json"
OPERATION = "application/vnd.rmaint.operation.v1+json"
RECEIPT = "application/vnd.rmaint.receipt.v1+json"

MAX_GRANT_SECONDS = 14 * 24 * 3600


def encode_key(key: PublicKey) -> str:
    return base64.b64encode(public_key_bytes(key)).decode()


def decode_key(text: str) -> PublicKey:
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise MalformedStatement("key is not base64") from exc
    return load_public_key(raw)


class _Statement:
    payload_type: ClassVar[str]

    def to_payload(self) -> bytes:
        return canonical(asdict(self))  # type: ignore[call-overload]


@dataclass(frozen=True)
class AccessRequest(_Statement):
    """An engineer's request, signed by the engineer's own key (``engineer_key``)."""

    payload_type: ClassVar[str] = ACCESS_REQUEST
    request_id: str
    case_id: str
    agent_id: str
    engineer: str
    engineer_key: str
    scopes: tuple[str, ...]
    duration_seconds: int
    reason: str
    created_at: int

    @property
    def engineer_key_id(self) -> str:
        return key_id(decode_key(self.engineer_key))

    @classmethod
    def from_payload(cls, payload: bytes) -> Self:
        r = Reader(payload, "access request")
        decode_key(r.text("engineer_key"))
        statement = cls(
            request_id=r.id("request_id"), case_id=r.id("case_id"), agent_id=r.id("agent_id"),
            engineer=r.id("engineer"), engineer_key=r.text("engineer_key"),
            scopes=parse_scopes(r.texts("scopes")),
            duration_seconds=r.int("duration_seconds", minimum=1),
            reason=r.text("reason"), created_at=r.int("created_at"),
        )
        if statement.duration_seconds > MAX_GRANT_SECONDS:
            raise MalformedStatement("access request: duration exceeds the 14-day maximum")
        return statement


@dataclass(frozen=True)
class Grant(_Statement):
    """The customer's consent: signed by a pinned approver key (``approver_key_id``)."""

    payload_type: ClassVar[str] = GRANT
    grant_id: str
    request_id: str
    case_id: str
    agent_id: str
    engineer: str
    engineer_key: str
    engineer_key_id: str
    scopes: tuple[str, ...]
    not_before: int
    not_after: int
    approver_key_id: str
    issued_at: int

    @classmethod
    def from_payload(cls, payload: bytes) -> Self:
        r = Reader(payload, "grant")
        grant = cls(
            grant_id=r.id("grant_id"), request_id=r.id("request_id"), case_id=r.id("case_id"),
            agent_id=r.id("agent_id"), engineer=r.id("engineer"),
            engineer_key=r.text("engineer_key"), engineer_key_id=r.id("engineer_key_id"),
            scopes=parse_scopes(r.texts("scopes")), not_before=r.int("not_before"),
            not_after=r.int("not_after"), approver_key_id=r.id("approver_key_id"),
            issued_at=r.int("issued_at"),
        )
        if key_id(decode_key(grant.engineer_key)) != grant.engineer_key_id:
            raise MalformedStatement("grant: engineer key does not match its id")
        if not 0 < grant.not_after - grant.not_before <= MAX_GRANT_SECONDS:
            raise MalformedStatement("grant: validity must be positive and at most 14 days")
        return grant


@dataclass(frozen=True)
class Denial(_Statement):
    """The customer's refusal of a request, signed by a pinned approver key."""

    payload_type: ClassVar[str] = DENIAL
    request_id: str
    case_id: str
    agent_id: str
    reason: str
    approver_key_id: str
    at: int

    @classmethod
    def from_payload(cls, payload: bytes) -> Self:
        r = Reader(payload, "denial")
        return cls(
            request_id=r.id("request_id"), case_id=r.id("case_id"), agent_id=r.id("agent_id"),
            reason=r.text("reason"), approver_key_id=r.id("approver_key_id"), at=r.int("at"),
        )


@dataclass(frozen=True)
class Revocation(_Statement):
    """The customer's withdrawal of a grant, signed by a pinned approver key."""

    payload_type: ClassVar[str] = REVOCATION
    grant_id: str
    agent_id: str
    reason: str
    approver_key_id: str
    at: int

    @classmethod
    def from_payload(cls, payload: bytes) -> Self:
        r = Reader(payload, "revocation")
        return cls(
            grant_id=r.id("grant_id"), agent_id=r.id("agent_id"), reason=r.text("reason"),
            approver_key_id=r.id("approver_key_id"), at=r.int("at"),
        )


@dataclass(frozen=True)
class Operation(_Statement):
    """One operation, signed by the engineer's key that the grant names."""

    payload_type: ClassVar[str] = OPERATION
    session_id: str
    seq: int
    grant_id: str
    agent_id: str
    case_id: str
    operation: str
    params: dict[str, Any]
    issued_at: int

    @classmethod
    def from_payload(cls, payload: bytes) -> Self:
        r = Reader(payload, "operation")
        return cls(
            session_id=r.id("session_id"), seq=r.int("seq", minimum=1),
            grant_id=r.id("grant_id"), agent_id=r.id("agent_id"), case_id=r.id("case_id"),
            operation=r.id("operation"), params=r.object("params"), issued_at=r.int("issued_at"),
        )


@dataclass(frozen=True)
class Receipt(_Statement):
    """The agent's signed account of what it did with one operation."""

    payload_type: ClassVar[str] = RECEIPT
    agent_id: str
    session_id: str
    seq: int
    operation: str
    operation_digest: str
    outcome: str
    result_digest: str
    at: int
    log_index: int

    @classmethod
    def from_payload(cls, payload: bytes) -> Self:
        r = Reader(payload, "receipt")
        return cls(
            agent_id=r.id("agent_id"), session_id=r.id("session_id"), seq=r.int("seq"),
            operation=r.id("operation"), operation_digest=r.text("operation_digest"),
            outcome=r.id("outcome"), result_digest=r.text("result_digest"), at=r.int("at"),
            log_index=r.int("log_index"),
        )


def peek(payload: bytes, field: str) -> Any:
    """One field of an unverified payload, for routing only (e.g. which grant to load)."""
    return Reader(payload, "statement").obj.get(field)
