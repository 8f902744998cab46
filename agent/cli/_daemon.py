"""``rmagent run`` without the command tree: the daemon holds only what serving needs.

The agent runs for months on the customer's host, so its footprint counts. Typer, Click,
Rich and the customer's command modules (with what they import) add several MiB that a
daemon never uses, so the plain forms of the command start the daemon directly:

    rmagent run            rmagent --home DIR run            rmagent --home=DIR run

Anything else (``--help``, ``--json``, a repeated or misplaced option) goes through the
command tree, which parses it exactly as before and runs the same daemon.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from agent.homes import DEFAULT_HOME, HOME_ENV


def daemon_home(argv: Sequence[str], environ: Mapping[str, str]) -> Path | None:
    """The home to serve if ``argv`` is one of the plain forms of ``run``, else None."""
    home = environ.get(HOME_ENV) or DEFAULT_HOME  # Click ignores an empty variable
    match list(argv):
        case ["run"]:
            pass
        case ["--home", value, "run"] if value and not value.startswith("-"):
            home = value
        case [option, "run"] if option.startswith("--home=") and len(option) > 7:
            home = option.removeprefix("--home=")
        case _:
            return None
    return Path(home).expanduser()


def serve(home: Path) -> int:
    """Run the daemon in the foreground; the exit status, as the command tree would give."""
    try:
        from agent.config import load
        from agent.daemon import run

        load(home)  # a clear error for a home that is not enrolled, before anything starts
        run(home)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # The CLI's error table, loaded only now: one line on stderr, as every command says it.
        from agent.cli._errors import message_for, reported_as_is

        if reported_as_is(exc):
            raise
        print(f"error: {message_for(exc, home)}", file=sys.stderr)
        return 1
    return 0


def main_if_daemon() -> None:
    """Serve and exit when the process's arguments are a plain ``run``; return otherwise."""
    home = daemon_home(sys.argv[1:], os.environ)
    if home is not None:
        sys.exit(serve(home))
