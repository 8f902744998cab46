"""The ``rmagent`` command tree and its global options."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agent.cli import (
    _changes,
    _consent,
    _decide,
    _engineers,
    _ledger,
    _setup,
    _shell,
    _status,
    _sync,
)
from agent.cli._common import Options
from agent.cli._locks import locks as _locks_command
from agent.homes import DEFAULT_HOME
from rmaint.cli import OneLineUsage

app = typer.Typer(
    name="rmagent", cls=OneLineUsage, no_args_is_help=True, pretty_exceptions_enable=False,
    add_completion=False, rich_markup_mode=None,
    help="The customer's side of rmaint: enroll this host, run the agent, and decide who "
         "may do what on it. Every grant, denial and revocation is signed here, with an "
         "approver key that never leaves this host.",
)


@app.callback()
def _global(
    ctx: typer.Context,
    home: Annotated[Path, typer.Option(
        envvar="RMAINT_HOME", help=f"The agent's home directory (default {DEFAULT_HOME}).",
        show_default=False)] = Path(DEFAULT_HOME),
    json_out: Annotated[bool, typer.Option(
        "--json", help="Machine-readable JSON output for every command.")] = False,
) -> None:
    ctx.obj = Options(home.expanduser(), json_out)


app.command("enroll")(_setup.enroll)
app.command("run")(_setup.run_daemon)
app.add_typer(_setup.approver_app, name="approver")
app.command("requests")(_consent.requests)
app.command("approve")(_decide.approve)
app.command("deny")(_decide.deny)
app.command("revoke")(_decide.revoke)
app.command("grants")(_consent.grants)
app.command("changes")(_changes.changes)
app.command("approve-change")(_changes.approve_change)
app.command("deny-change")(_changes.deny_change)
app.add_typer(_engineers.engineers_app, name="engineers")
app.command("status")(_status.status)
app.command("sync")(_sync.sync)
app.command("locks")(_locks_command)
app.command("log")(_status.log)
app.command("verify-log")(_ledger.verify_log)
app.command("sessions")(_shell.sessions)
app.command("watch")(_shell.watch)
app.command("kill")(_shell.kill)
