"""Running one signed operation in a session: the session options every diagnostic command
takes, and the output they share (the agent's result, its receipt, hidden values)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from controller.cli import _output as out
from controller.cli._app import Options
from controller.cli._run import with_workflow

if TYPE_CHECKING:
    from controller.client.workflow import EngineerWorkflow, OperationResult

SessionOpt = Annotated[str, typer.Option("--session", help="Run in this session instead of "
                                                         "the current one.")]
CaseOpt = Annotated[str, typer.Option("--case", help="With --agent: use or open a session on "
                                                     "this case.")]
AgentOpt = Annotated[str, typer.Option("--agent", help="With --case: the agent.")]


def run_operation(opts: Options, operation: str, params: dict[str, Any],
                  show: Callable[[Any], None], where: tuple[str, str, str]) -> None:
    """Run ``operation`` in the session ``where`` names (session, case, agent) and show its
    result: raw on stdout with ``--json``, else with ``show``; the receipt line after."""
    async def work(workflow: EngineerWorkflow) -> OperationResult:
        state = await workflow.session_for(*(w or None for w in where))
        return await workflow.run(state, operation, params)

    result = with_workflow(opts, work)
    line = (f"receipt {result.receipt_digest} {signed_by(result)}  event {result.event_id}  "
            f"session {result.session_id} seq {result.seq}")
    if opts.json:
        out.emit_json(result.result)
        typer.echo(line, err=True)  # stdout stays the agent's result alone
    else:
        show(result.result)
        hidden = redactions(result.result)
        if hidden:
            out.note(f"{hidden} value{'s' if hidden != 1 else ''} hidden by redaction")
        out.note(line)
    if refused(result.result):
        raise typer.Exit(1)


def refused(result: Any) -> bool:
    """Whether the agent answered that the operation could not be done on what was named (a
    path outside the roots, not found, not a file; a process that does not exist): the
    receipt is still shown, but a script must see the failure in the exit status."""
    if not isinstance(result, dict):
        return False
    return result.get("exists") is False or ("error" in result and "message" in result)


def signed_by(result: OperationResult) -> str:
    """Whose signature on the receipt was checked, or that none could be."""
    if result.agent_key_id is None:
        return ("(signature not checked: this session's local state has no agent key; "
                "reopen the session to check receipts)")
    return f"signed by agent {result.receipt.agent_id} ({result.agent_key_id[:23]}…)"


def redactions(result: Any) -> int:
    """How many values the agent redacted out of ``result`` (its ``redactions`` count)."""
    count = result.get("redactions") if isinstance(result, dict) else None
    return count if isinstance(count, int) and not isinstance(count, bool) else 0
