"""Frozen values read from and written to the store, one per table.

Field names equal column names; :func:`load` and :func:`dump` convert the columns that
need it (scope lists and envelopes).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from sqlalchemy.engine import Row

from controller.store.codec import envelope_of, envelope_text, scopes_of, scopes_text
from permissions import Envelope

T = TypeVar("T")
_ENVELOPES = ("envelope", "receipt", "operation_envelope")


@dataclass(frozen=True)
class Customer:
    customer_id: str
    name: str
    contract_start: dt.date
    contract_end: dt.date
    created_at: float


@dataclass(frozen=True)
class AgentRecord:
    agent_id: str
    customer_id: str
    address: str
    public_key: bytes
    key_fingerprint: str
    enrolled_at: float
    last_seen: float | None


@dataclass(frozen=True)
class Principal:
    role: str
    name: str
    key_fingerprint: str
    enrolled_at: float


@dataclass(frozen=True)
class JoinTokenRecord:
    secret_sha256: str
    role: str
    subject: str
    customer_id: str | None
    created_at: float
    expires_at: float
    used_at: float | None


@dataclass(frozen=True)
class Case:
    case_id: str
    customer_id: str
    title: str
    status: str
    assignee: str
    opened_by: str
    opened_at: float
    closed_at: float | None
    resolution: str


@dataclass(frozen=True)
class RequestRecord:
    request_id: str
    case_id: str
    agent_id: str
    engineer: str
    engineer_key_id: str
    scopes: tuple[str, ...]
    duration_seconds: int
    reason: str
    status: str
    created_at: float
    grant_id: str | None
    envelope: Envelope


@dataclass(frozen=True)
class GrantRecord:
    grant_id: str
    request_id: str
    case_id: str
    agent_id: str
    engineer: str
    engineer_key_id: str
    scopes: tuple[str, ...]
    not_before: int
    not_after: int
    approver_key_id: str
    envelope: Envelope
    recorded_at: float
    revoked_at: float | None
    expired_at: float | None

    def active_at(self, now: float) -> bool:
        """Not revoked and inside its window at ``now`` (controller clock)."""
        return self.revoked_at is None and self.not_before <= now < self.not_after


@dataclass(frozen=True)
class ConsentEntry:
    entry_id: int | None
    at: float
    kind: str
    request_id: str
    grant_id: str | None
    case_id: str
    agent_id: str
    actor: str
    reason: str
    scopes: tuple[str, ...]
    envelope: Envelope | None


@dataclass(frozen=True)
class Session:
    session_id: str
    engineer: str
    case_id: str
    agent_id: str
    grant_id: str
    started_at: float
    ended_at: float | None
    end_reason: str | None

    @property
    def is_open(self) -> bool:
        return self.ended_at is None


@dataclass(frozen=True)
class SessionEvent:
    event_id: int | None
    session_id: str
    seq: int
    engineer: str
    operation: str
    params_json: str
    outcome: str
    detail: str
    started_at: float
    duration_ms: float | None
    receipt: Envelope | None
    operation_envelope: Envelope


_NAMES: dict[type, tuple[str, ...]] = {}


def _names(kind: type) -> tuple[str, ...]:
    """The field names of one of the dataclasses above, looked up once."""
    names = _NAMES.get(kind)
    if names is None:
        names = _NAMES[kind] = tuple(field.name for field in fields(kind))
    return names


def load(kind: type[T], row: Row[Any]) -> T:
    """A record of ``kind`` from a result row."""
    values: dict[str, Any] = {}
    columns = row._mapping
    for name in _names(kind):
        value = columns[name]
        if name == "scopes":
            value = scopes_of(value)
        elif name in _ENVELOPES and value is not None:
            value = envelope_of(value)
        values[name] = value
    return kind(**values)


def dump(record: object, *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Column values for ``record``; ``skip`` leaves out e.g. autoincrement ids."""
    values: dict[str, Any] = {}
    for field in fields(record):  # type: ignore[arg-type]  # a dataclass instance
        if field.name in skip:
            continue
        value = getattr(record, field.name)
        if field.name == "scopes":
            value = scopes_text(value)
        elif isinstance(value, Envelope):
            value = envelope_text(value)
        values[field.name] = value
    return values
