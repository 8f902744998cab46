"""Interactive login: shell tickets, the customer's ``[shell]`` policy, live PTY shells.

An engineer's signed ``shell.open`` operation (scope ``shell``) makes a single-use ticket
(:mod:`agent.shell.tickets`); the gateway redeems it over ``AgentService.Shell``
(:mod:`agent.shell.service`), and the agent starts a PTY shell as the local user the
customer configured (:mod:`agent.shell.policy`, :mod:`agent.shell.pty`). Live shells are
listed, watched and ended by the customer (:mod:`agent.shell.live`), and revoking their
grant ends them.

Errors::

    ShellError              (agent.errors.AgentError)
    ├── TicketRefused       a ticket cannot be redeemed (reason inside, "permission denied" out)
    └── ShellPolicyInvalid  the [shell] table of agent.toml breaks a rule
"""

from agent.shell.errors import ShellError, ShellPolicyInvalid, TicketRefused

__all__ = ["ShellError", "ShellPolicyInvalid", "TicketRefused"]
