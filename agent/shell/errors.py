"""The shell package's errors (tree in :mod:`agent.shell`)."""

from __future__ import annotations

from agent.errors import AgentError, Refused


class ShellError(AgentError):
    """Base of the shell package's errors."""


class TicketRefused(Refused, ShellError):
    """A ticket cannot be redeemed; ``reason`` says why (for the log only)."""


class ShellPolicyInvalid(ShellError):
    """The ``[shell]`` table of agent.toml breaks a rule; the message names it."""
