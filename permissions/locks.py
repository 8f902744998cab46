"""Locks: the service company's own stop on an agent, an engineer key, a grant or a case.

A lock only ever restricts. The controller refuses what a lock covers before it relays
anything, and the agent, which decides, refuses it too with its own clock: a lock the
controller pushed is honoured even if the controller later misbehaves, and removing a
lock never allows what the customer's grant does not.

A target is one of ``agent:<id>``, ``engineer-key:sha256:<hex>``, ``grant:<id>`` and
``case:<id>``. :data:`EVERYTHING` covers every subject: only an agent makes such a lock
(it fails closed with it while its lock set is unknown); no parsed target is ever it.
Pure: no I/O; callers pass ``now``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

KINDS = ("agent", "engineer-key", "grant", "case")
EVERYTHING = "*"
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_KEY_ID = re.compile(r"sha256:[0-9a-f]{64}")


class BadLockTarget(ValueError):
    """A lock target that is not ``<kind>:<id>`` with a known kind and a valid id."""


def parse_target(text: str) -> tuple[str, str]:
    """``(kind, id)`` of a lock target; BadLockTarget with the reason if malformed."""
    kind, sep, ident = text.strip().partition(":")
    if not sep or kind not in KINDS:
        raise BadLockTarget(f"lock target must be one of {', '.join(k + ':<id>' for k in KINDS)}"
                            f", got {text!r}")
    pattern = _KEY_ID if kind == "engineer-key" else _ID
    if not pattern.fullmatch(ident):
        what = "sha256:<64 hex digits>" if kind == "engineer-key" else "an id"
        raise BadLockTarget(f"{kind} lock needs {what}, got {ident!r}")
    return kind, ident


def target(kind: str, ident: str) -> str:
    return f"{kind}:{ident}"


@dataclass(frozen=True)
class Lock:
    """One lock; ``expires_at`` 0 means it never expires."""

    lock_id: str
    target: str
    reason: str = ""
    created_by: str = ""
    created_at: float = 0.0
    expires_at: float = 0.0

    def in_force(self, now: float) -> bool:
        return not self.expires_at or now < self.expires_at


@dataclass(frozen=True)
class Subject:
    """What an operation, session or request touches; empty fields touch nothing."""

    agent_id: str = ""
    grant_id: str = ""
    case_id: str = ""
    engineer_key_id: str = ""

    def targets(self) -> frozenset[str]:
        pairs = (("agent", self.agent_id), ("grant", self.grant_id), ("case", self.case_id),
                 ("engineer-key", self.engineer_key_id))
        return frozenset(target(kind, ident) for kind, ident in pairs if ident)


def covering(locks: Iterable[Lock], subject: Subject, now: float) -> Lock | None:
    """The first lock in force at ``now`` that covers ``subject``, else None."""
    targets = subject.targets()
    for lock in locks:
        if (lock.target in targets or lock.target == EVERYTHING) and lock.in_force(now):
            return lock
    return None
