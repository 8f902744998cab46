"""``rmagent``: the customer's commands, a thin layer over the agent's local client.

Console script ``rmagent = agent.cli:main``. Errors are one line ``error: ...`` on stderr
with exit status 1 (usage errors 2, interrupted 130); ``--json`` gives machine output.
"""

from __future__ import annotations

from agent.cli._app import app

__all__ = ["app", "main"]


def main() -> None:
    """Run ``rmagent`` with the process's arguments; exits with the command's status."""
    app(prog_name="rmagent")
