"""Shell tickets: single use, at most 60 s, bound to the grant's engineer key (fake clock)."""

from __future__ import annotations

import pytest

from agent.errors import Refused
from agent.shell.errors import TicketRefused
from agent.shell.tickets import MAX_TICKETS, MAX_TTL, Binding, TicketStore

KEY = "sha256:" + "a" * 64
BINDING = Binding("G-1", "C-1", "S-1", "alice", KEY, 4)
T0 = 1_800_000_000.0


def reason(store: TicketStore, ticket: str, key: str = KEY, now: float = T0) -> str:
    with pytest.raises(TicketRefused) as info:
        store.redeem(ticket, key, now=now)
    return info.value.reason


def test_a_ticket_redeems_once_to_its_binding() -> None:
    store = TicketStore()
    ticket, expires_at = store.issue(BINDING, ttl=30, now=T0)
    assert len(ticket) == 32 and int(ticket, 16) >= 0
    assert expires_at == T0 + 30
    assert store.redeem(ticket, KEY, now=T0 + 29.9) == BINDING
    assert reason(store, ticket, now=T0 + 1) == "ticket-unknown"


def test_tickets_are_distinct() -> None:
    store = TicketStore()
    tickets = {store.issue(BINDING, ttl=60, now=T0)[0] for _ in range(200)}
    assert len(tickets) == 200


def test_an_expired_ticket_is_refused_and_consumed() -> None:
    store = TicketStore()
    ticket, _ = store.issue(BINDING, ttl=5, now=T0)
    assert reason(store, ticket, now=T0 + 5) == "ticket-expired"
    assert reason(store, ticket, now=T0) == "ticket-unknown"


def test_lifetime_is_capped_at_sixty_seconds() -> None:
    store = TicketStore()
    ticket, expires_at = store.issue(BINDING, ttl=3600, now=T0)
    assert expires_at == T0 + MAX_TTL
    assert reason(store, ticket, now=T0 + MAX_TTL) == "ticket-expired"


def test_another_key_is_refused_and_burns_the_ticket() -> None:
    store = TicketStore()
    ticket, _ = store.issue(BINDING, ttl=60, now=T0)
    assert reason(store, ticket, key="sha256:" + "b" * 64) == "wrong-engineer-key"
    assert reason(store, ticket) == "ticket-unknown"


def test_refusals_are_permission_denied_refusals() -> None:
    assert issubclass(TicketRefused, Refused)


def test_expired_tickets_are_dropped_and_outstanding_ones_are_bounded() -> None:
    store = TicketStore()
    for _ in range(MAX_TICKETS):
        store.issue(BINDING, ttl=1, now=T0)
    with pytest.raises(TicketRefused) as info:
        store.issue(BINDING, ttl=1, now=T0 + 0.5)
    assert info.value.reason == "too-many-tickets"
    store.issue(BINDING, ttl=1, now=T0 + 1)  # the old ones expired: room again
    assert store.outstanding() == 1
