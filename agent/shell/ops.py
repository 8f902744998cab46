"""The ``shell.open`` operation (scope ``shell``): a single-use ticket for one login.

Params: ``{"ttl": seconds}`` (optional, 1..60, default 60). Result:
``{"ticket": <32 hex>, "expires_at": <unix seconds>, "agent_id": ...}``. The ticket
binds the verified grant, case, session, engineer key and this operation's sequence
number; the gateway redeems it over ``AgentService.Shell``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from agent.catalogue import OperationSpec, Params, Runner
from agent.context import OperationContext
from agent.diag.params import ParamReader
from agent.errors import InvalidParams
from agent.shell.policy import ShellPolicy
from agent.shell.tickets import MAX_TTL, Binding, TicketStore

NAME = "shell.open"


def shell_specs(policy: ShellPolicy, tickets: TicketStore,
                clock: Callable[[], float] = time.time) -> tuple[OperationSpec, ...]:
    """``shell.open``, bound to the customer's policy and the agent's ticket store."""
    def prepare(params: Params, context: OperationContext) -> Runner:
        ttl = ParamReader(NAME, params, ("ttl",)).number("ttl", MAX_TTL, 1, MAX_TTL)
        if not policy.enabled:
            raise InvalidParams(f"{NAME}: interactive login is not enabled on this agent")

        async def run() -> dict[str, Any]:
            binding = Binding(context.grant_id, context.case_id, context.session_id,
                              context.engineer, context.engineer_key_id, context.seq)
            ticket, expires_at = tickets.issue(binding, ttl=ttl, now=clock())
            return {"ticket": ticket, "expires_at": expires_at, "agent_id": context.agent_id}
        return run

    def refuse(params: Params) -> Runner:
        raise InvalidParams(f"{NAME}: runs only through the dispatcher")

    return (OperationSpec(NAME, "shell", False, 5.0, 4096, refuse, prepare),)
