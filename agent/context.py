"""Who an operation runs for: what the dispatcher verified, handed to operations that need it.

Writes need it: a preview is stored under its grant, case, session and engineer key, and
an apply accepts only a change consent that names the same ones.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OperationContext:
    """The verified context of one operation (from its grant and its signed envelope)."""

    agent_id: str
    grant_id: str
    case_id: str
    session_id: str
    seq: int
    engineer: str
    engineer_key_id: str
    # The grant's scopes, for an operation whose parts need more than its own scope
    # (bundle.create: logs need diag.logs, configuration contents diag.files).
    scopes: tuple[str, ...] = ()
