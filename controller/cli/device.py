"""Agentless devices behind an agent (scope device.exec): the customer's list, and running
one of the commands the customer allowlisted for a device."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from controller.cli import _output as out
from controller.cli._app import Options, command, group
from controller.cli._operation import AgentOpt, CaseOpt, SessionOpt, run_operation

device_app = group("device")


@command(device_app, "list")
def device_list(opts: Options, session: SessionOpt = "", case: CaseOpt = "",
                agent: AgentOpt = "") -> None:
    """The devices the customer lets engineers reach from this agent, and their commands."""
    run_operation(opts, "device.list", {}, _show_list, (session, case, agent))


@command(device_app, "exec")
def device_exec(
    opts: Options,
    device: Annotated[str, typer.Argument(help="Device name from 'rmctl device list'.")],
    words: Annotated[list[str], typer.Argument(
        metavar="COMMAND...", help="An allowlisted command, word for word (quote it or not).")],
    session: SessionOpt = "", case: CaseOpt = "", agent: AgentOpt = "",
) -> None:
    """Run an allowlisted command on a device; the agent logs in with credentials that never
    leave it, checks the device's pinned host key, and redacts the output."""
    command_text = " ".join(" ".join(words).split())
    run_operation(opts, "device.exec", {"device": device, "command": command_text},
                  _show_exec, (session, case, agent))


def _show_list(result: Any) -> None:
    devices = result.get("devices", [])
    if not devices:
        out.note("the customer has listed no device on this agent")
        return
    out.table("Devices", ("Device", "Allowlisted commands"),
              ((d["name"], "; ".join(d["commands"])) for d in devices))


def _show_exec(result: Any) -> None:
    typer.echo(result.get("stdout", ""), nl=False)
    if result.get("stderr"):
        typer.echo(result["stderr"], nl=False, err=True)
    cut = " (output cut at the agent's limit)" if result.get("truncated") else ""
    out.note(f"exit status {result.get('exit_status')} from {result.get('device')} in "
             f"{result.get('duration_ms')} ms{cut}")
