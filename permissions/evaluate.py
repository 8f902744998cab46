"""The agent's decision on one operation. Pure: time and state are parameters.

Nothing matched means deny; every denial names its precise reason for the audit log,
while callers outside learn only that permission was denied.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass

from permissions._errors import MalformedStatement, PermissionsError
from permissions.consent import verify_decision
from permissions.envelope import Envelope, PublicKey, verify
from permissions.statements import GRANT, OPERATION, Grant, Operation, decode_key


class Reason(enum.StrEnum):
    """Why an operation was refused."""

    MALFORMED = "malformed-statement"
    GRANT_SIGNATURE = "grant-not-signed-by-pinned-approver"
    GRANT_MISMATCH = "operation-names-another-grant"
    WRONG_AGENT = "grant-for-another-agent"
    REVOKED = "grant-revoked"
    NOT_YET_VALID = "grant-not-yet-valid"
    EXPIRED = "grant-expired"
    WRONG_CASE = "grant-for-another-case"
    UNKNOWN_OPERATION = "unknown-operation"
    SCOPE_MISSING = "scope-not-granted"
    ENGINEER_SIGNATURE = "operation-not-signed-by-granted-engineer"
    REPLAY = "sequence-not-increasing"
    STALE = "operation-too-old-or-too-new"


MAX_CLOCK_SKEW = 300.0
"""How far an operation's ``issued_at`` may be from the agent's clock, in seconds."""


@dataclass(frozen=True)
class Decision:
    """The outcome; ``grant`` and ``operation`` are set once they were verified."""

    allowed: bool
    reason: Reason | None = None
    detail: str = ""
    grant: Grant | None = None
    operation: Operation | None = None


@dataclass(frozen=True)
class AgentTrust:
    """What the agent trusts, from its local configuration alone."""

    agent_id: str
    approver_keys: Mapping[str, PublicKey]


def _deny(reason: Reason, detail: str, grant: Grant | None = None,
          operation: Operation | None = None) -> Decision:
    return Decision(False, reason, detail, grant, operation)


def verify_grant(envelope: Envelope, approver_keys: Mapping[str, PublicKey]) -> Grant:
    """The grant, if signed by one of the pinned approver keys it names."""
    if envelope.payload_type != GRANT:
        raise MalformedStatement("not a grant")
    grant = verify_decision(envelope, approver_keys)
    assert isinstance(grant, Grant)
    return grant


def evaluate(
    *,
    grant_envelope: Envelope,
    operation_envelope: Envelope,
    trust: AgentTrust,
    scope_of: Callable[[str], str | None],
    last_seq: int | None,
    revoked: Container[str],
    now: float,
) -> Decision:
    """Decide whether the agent may run the operation under the grant at ``now``."""
    try:
        grant = verify_grant(grant_envelope, trust.approver_keys)
        engineer_key = decode_key(grant.engineer_key)
    except PermissionsError as exc:
        return _deny(Reason.GRANT_SIGNATURE, str(exc))
    return evaluate_verified(grant=grant, engineer_key=engineer_key,
                             operation_envelope=operation_envelope, agent_id=trust.agent_id,
                             scope_of=scope_of, last_seq=last_seq, revoked=revoked, now=now)


def evaluate_verified(
    *,
    grant: Grant,
    engineer_key: PublicKey,
    operation_envelope: Envelope,
    agent_id: str,
    scope_of: Callable[[str], str | None],
    last_seq: int | None,
    revoked: Container[str],
    now: float,
) -> Decision:
    """Like :func:`evaluate` for a grant whose approver signature the caller has already
    verified with :func:`verify_grant` (for instance, remembered by its exact bytes and the
    pinned keys of the moment). Everything else is checked here, every time."""
    try:
        engineer = {grant.engineer_key_id: engineer_key}
        op = Operation.from_payload(verify(operation_envelope, OPERATION, engineer))
    except PermissionsError as exc:
        return _deny(Reason.ENGINEER_SIGNATURE, str(exc), grant)
    return _check(grant, op, agent_id, scope_of, last_seq, revoked, now)


def _check(grant: Grant, op: Operation, agent_id: str, scope_of: Callable[[str], str | None],
           last_seq: int | None, revoked: Container[str], now: float) -> Decision:
    if op.grant_id != grant.grant_id:
        return _deny(Reason.GRANT_MISMATCH, f"{op.grant_id} != {grant.grant_id}", grant, op)
    if grant.agent_id != agent_id or op.agent_id != agent_id:
        return _deny(Reason.WRONG_AGENT, f"grant for {grant.agent_id}", grant, op)
    if grant.grant_id in revoked:
        return _deny(Reason.REVOKED, grant.grant_id, grant, op)
    if now < grant.not_before:
        return _deny(Reason.NOT_YET_VALID, f"valid from {grant.not_before}", grant, op)
    if now >= grant.not_after:
        return _deny(Reason.EXPIRED, f"expired at {grant.not_after}", grant, op)
    if op.case_id != grant.case_id:
        return _deny(Reason.WRONG_CASE, f"{op.case_id} != {grant.case_id}", grant, op)
    scope = scope_of(op.operation)
    if scope is None:
        return _deny(Reason.UNKNOWN_OPERATION, op.operation, grant, op)
    if scope not in grant.scopes:
        return _deny(Reason.SCOPE_MISSING, f"{op.operation} needs {scope}", grant, op)
    if last_seq is not None and op.seq <= last_seq:
        return _deny(Reason.REPLAY, f"seq {op.seq} after {last_seq}", grant, op)
    if abs(now - op.issued_at) > MAX_CLOCK_SKEW:
        return _deny(Reason.STALE, f"issued at {op.issued_at}, now {now:.0f}", grant, op)
    return Decision(True, None, "", grant, op)
