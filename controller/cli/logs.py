"""Logs the customer allowlisted, tailed and searched on the agent, redacted line by line."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from controller.cli import _diag_render as render
from controller.cli._app import Options, command, group
from controller.cli._operation import AgentOpt, CaseOpt, SessionOpt, run_operation

logs_app = group("logs")

FileOpt = Annotated[str, typer.Option(
    "--file", help="A log file named in the agent's [diag] log_files.")]
UnitOpt = Annotated[str, typer.Option(
    "--unit", help="A journald unit named in the agent's [diag] journald_units.")]


def source(file: str, unit: str) -> dict[str, Any]:
    """The ``path`` or ``unit`` parameter; exactly one of --file and --unit is a must."""
    if bool(file) == bool(unit):
        raise typer.BadParameter("give exactly one of --file PATH or --unit UNIT",
                                 param_hint="--file / --unit")
    return {"path": file} if file else {"unit": unit}


@command(logs_app, "tail")
def logs_tail(
    opts: Options,
    file: FileOpt = "", unit: UnitOpt = "",
    lines: Annotated[int, typer.Option("--lines", "-n", min=1, max=1000,
                                       help="How many of the last lines.")] = 100,
    session: SessionOpt = "", case: CaseOpt = "", agent: AgentOpt = "",
) -> None:
    """The last lines of a log, oldest first, redacted on the agent."""
    params = {**source(file, unit), "lines": lines}
    run_operation(opts, "logs.tail", params, render.render_tail, (session, case, agent))


@command(logs_app, "search")
def logs_search(
    opts: Options,
    pattern: Annotated[str, typer.Argument(help="Text to find (a regular expression with "
                                                "--regex).", show_default=False)],
    file: FileOpt = "", unit: UnitOpt = "",
    regex: Annotated[bool, typer.Option("--regex", help="PATTERN is a regular "
                                                        "expression.")] = False,
    ignore_case: Annotated[bool, typer.Option("--ignore-case", "-i",
                                              help="Match in any case.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=1000,
                                       help="How many of the most recent matches.")] = 100,
    session: SessionOpt = "", case: CaseOpt = "", agent: AgentOpt = "",
) -> None:
    """Lines of a log that match PATTERN, most recent last; lines are redacted before
    they are matched. Files are searched over their last 16 MiB, units over their last
    10,000 entries."""
    params = {**source(file, unit), "pattern": pattern, "regex": regex,
              "ignore_case": ignore_case, "limit": limit}
    run_operation(opts, "logs.search", params, render.render_search, (session, case, agent))
