"""``rmagent``: the customer's commands, a thin layer over the agent's local client.

Console script ``rmagent = agent.cli:main``. Errors are one line ``error: ...`` on stderr
with exit status 1 (usage errors 2, interrupted 130); ``--json`` gives machine output.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.cli._daemon import main_if_daemon

if TYPE_CHECKING:
    from agent.cli._app import app

__all__ = ["app", "main"]


def main() -> None:
    """Run ``rmagent`` with the process's arguments; exits with the command's status."""
    main_if_daemon()
    from agent.cli._app import app

    app(prog_name="rmagent")


def __getattr__(name: str) -> object:
    # The command tree loads on use: ``rmagent run`` serves without it (see _daemon).
    if name == "app":
        from agent.cli._app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
