"""The shell.open operation: parameters, the customer's switch, the ticket it makes."""

from __future__ import annotations

import pytest

from agent.context import OperationContext
from agent.errors import InvalidParams
from agent.shell.ops import shell_specs
from agent.shell.policy import ShellPolicy
from agent.shell.tickets import Binding, TicketStore

CONTEXT = OperationContext(agent_id="web-1", grant_id="G-1", case_id="C-1", session_id="S-1",
                           seq=3, engineer="alice", engineer_key_id="sha256:" + "a" * 64)
ON = ShellPolicy(user="maint")


async def test_a_ticket_is_bound_to_the_verified_context() -> None:
    tickets = TicketStore()
    (op,) = shell_specs(ON, tickets, clock=lambda: 1000.0)
    assert (op.name, op.scope, op.writes) == ("shell.open", "shell", False)
    result = await op.runner({"ttl": 10}, CONTEXT)()
    assert result["expires_at"] == 1010.0 and result["agent_id"] == "web-1"
    binding = tickets.redeem(result["ticket"], CONTEXT.engineer_key_id, now=1005.0)
    assert binding == Binding("G-1", "C-1", "S-1", "alice", CONTEXT.engineer_key_id, 3)


@pytest.mark.parametrize("params", [{"ttl": 0}, {"ttl": 61}, {"ttl": "60"}, {"other": 1}])
def test_bad_params_are_refused(params: dict[str, object]) -> None:
    (op,) = shell_specs(ON, TicketStore())
    with pytest.raises(InvalidParams):
        op.runner(params, CONTEXT)


def test_no_shell_table_means_no_ticket() -> None:
    tickets = TicketStore()
    (op,) = shell_specs(ShellPolicy(), tickets)
    with pytest.raises(InvalidParams, match="not enabled"):
        op.runner({}, CONTEXT)
    assert tickets.outstanding() == 0


def test_it_runs_only_through_the_dispatcher() -> None:
    (op,) = shell_specs(ON, TicketStore())
    with pytest.raises(InvalidParams):
        op.prepare({})
