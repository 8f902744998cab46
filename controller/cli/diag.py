"""Diagnostics on a customer host, run as signed operations in a session."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from controller.cli import _diag_render as render
from controller.cli import _output as out
from controller.cli._app import Options, command, group
from controller.cli._run import with_workflow

if TYPE_CHECKING:
    from controller.client.workflow import EngineerWorkflow, OperationResult

diag_app = group("diag")

SessionOpt = Annotated[str, typer.Option("--session", help="Run in this session instead of "
                                                         "the current one.")]
CaseOpt = Annotated[str, typer.Option("--case", help="With --agent: use or open a session on "
                                                     "this case.")]
AgentOpt = Annotated[str, typer.Option("--agent", help="With --case: the agent.")]


class By(enum.StrEnum):
    cpu = "cpu"
    memory = "memory"


def _run(opts: Options, operation: str, params: dict[str, Any],
         show: Callable[[Any], None], where: tuple[str, str, str]) -> None:
    async def work(workflow: EngineerWorkflow) -> OperationResult:
        state = await workflow.session_for(*(w or None for w in where))
        return await workflow.run(state, operation, params)

    result = with_workflow(opts, work)
    line = (f"receipt {result.receipt_digest}  event {result.event_id}  "
            f"session {result.session_id} seq {result.seq}")
    if opts.json:
        out.emit_json(result.result)
        typer.echo(line, err=True)  # stdout stays the agent's result alone
        return
    show(result.result)
    out.note(line)


@command(diag_app, "system")
def diag_system(opts: Options, session: SessionOpt = "", case: CaseOpt = "",
                agent: AgentOpt = "") -> None:
    """Host, OS, uptime, CPU, load, memory and swap."""
    _run(opts, "diag.system", {}, render.render_fields, (session, case, agent))


@command(diag_app, "disks")
def diag_disks(opts: Options, session: SessionOpt = "", case: CaseOpt = "",
               agent: AgentOpt = "") -> None:
    """Mounted filesystems: size, use and free space."""
    _run(opts, "diag.disks", {}, lambda r: render.render_rows("Filesystems", r),
         (session, case, agent))


@command(diag_app, "processes")
def diag_processes(
    opts: Options,
    by: Annotated[By, typer.Option(help="Sort by CPU or memory use.")] = By.cpu,
    limit: Annotated[int, typer.Option(min=1, max=100, help="How many processes.")] = 10,
    interval: Annotated[float, typer.Option(
        min=0, max=10, help="Seconds to sample CPU use over.")] = 0.5,
    session: SessionOpt = "", case: CaseOpt = "", agent: AgentOpt = "",
) -> None:
    """The top processes by CPU or memory, command lines redacted on the agent."""
    params = {"by": by.value, "limit": limit, "interval": interval}
    _run(opts, "diag.processes", params, lambda r: render.render_rows("Processes", r),
         (session, case, agent))
