"""Single-use shell tickets, kept in memory: made by ``shell.open``, redeemed by the gateway.

Pure but for randomness at issue: time is a parameter. A ticket is 128 random bits, lives
at most :data:`MAX_TTL` seconds, binds the grant, case, session, engineer key and the
``shell.open`` sequence number, and is consumed by the first redemption, whatever its
outcome, so a ticket seen once can never be used again.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from agent.shell.errors import TicketRefused

MAX_TTL = 60.0
MAX_TICKETS = 1024  # outstanding tickets; more means something is wrong: refuse new ones


@dataclass(frozen=True)
class Binding:
    """Whom a ticket is for, from the verified ``shell.open`` operation."""

    grant_id: str
    case_id: str
    session_id: str
    engineer: str
    engineer_key_id: str
    seq: int


@dataclass(frozen=True)
class _Ticket:
    binding: Binding
    expires_at: float


class TicketStore:
    """Issue and redeem tickets; every refusal is a TicketRefused with its reason."""

    def __init__(self) -> None:
        self._tickets: dict[str, _Ticket] = {}
        # Called with each new ticket and its expiry (a dial-out agent opens its shell
        # stream to the controller for it: agent.shell.reverse).
        self.on_issue: list[Callable[[str, float], object]] = []

    def issue(self, binding: Binding, *, ttl: float, now: float) -> tuple[str, float]:
        """A new ticket id for ``binding`` and when it expires (``ttl`` capped at MAX_TTL)."""
        self._drop_expired(now)
        if len(self._tickets) >= MAX_TICKETS:
            raise TicketRefused("too-many-tickets", f"{len(self._tickets)} outstanding")
        ticket = secrets.token_hex(16)
        expires_at = now + min(max(ttl, 1.0), MAX_TTL)
        self._tickets[ticket] = _Ticket(binding, expires_at)
        for hook in self.on_issue:
            hook(ticket, expires_at)
        return ticket, expires_at

    def redeem(self, ticket: str, engineer_key_id: str, *, now: float) -> Binding:
        """Consume ``ticket``; its binding if it was issued, unexpired, for that key."""
        found = self._tickets.pop(ticket, None)
        if found is None:
            raise TicketRefused("ticket-unknown", "unknown or already used ticket")
        if now >= found.expires_at:
            raise TicketRefused("ticket-expired", f"expired {now - found.expires_at:.1f}s ago")
        if engineer_key_id != found.binding.engineer_key_id:
            raise TicketRefused("wrong-engineer-key",
                                f"client key {engineer_key_id[:23]}, grant names "
                                f"{found.binding.engineer_key_id[:23]}")
        return found.binding

    def outstanding(self) -> int:
        return len(self._tickets)

    def _drop_expired(self, now: float) -> None:
        for ticket in [t for t, v in self._tickets.items() if now >= v.expires_at]:
            del self._tickets[ticket]
