"""Running one signed streaming operation in a session (``diag watch``, ``bundle create``):
each part goes to the command as it arrives; the receipt line is printed at the end."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import typer

from controller.cli import _output as out
from controller.cli._app import Options
from controller.cli._operation import signed_by
from controller.cli._run import with_workflow

if TYPE_CHECKING:
    from controller.client.workflow import EngineerWorkflow, OperationResult


def run_streaming(opts: Options, operation: str, params: dict[str, Any],
                  on_part: Callable[[bytes], Awaitable[None]],
                  where: tuple[str, str, str]) -> OperationResult:
    """Run ``operation`` in the session ``where`` names (session, case, agent); the
    result, once its receipt and the parts received agree."""
    async def work(workflow: EngineerWorkflow) -> OperationResult:
        state = await workflow.session_for(*(w or None for w in where))
        return await workflow.run_stream(state, operation, params, on_part)

    return with_workflow(opts, work)


def receipt_line(opts: Options, result: OperationResult) -> None:
    """The receipt line: on stderr with ``--json`` (stdout stays the data), else stdout."""
    line = (f"receipt {result.receipt_digest} {signed_by(result)}  event {result.event_id}  "
            f"session {result.session_id} seq {result.seq}")
    if opts.json:
        typer.echo(line, err=True)
    else:
        out.note(line)
