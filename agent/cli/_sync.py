"""``rmagent sync``: talk to the controller now instead of waiting for the daemon's next
round, and have the logs witnessed (see :mod:`agent.witness`)."""

from __future__ import annotations

from pathlib import Path

import typer

from agent.cli._common import JsonOption, console, emit_json, enrolled, options, run
from agent.cli._errors import guarded
from agent.local_client import LocalClient
from rmaint.v1 import agent_pb2


async def _sync(socket: Path) -> agent_pb2.SyncResponse:
    async with LocalClient(socket) as client:
        return await client.sync()


@guarded
def sync(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """Sync with the controller now (new requests, unreported decisions), then witness the
    logs: the controller cosigns this agent's log and this agent cosigns the controller's.
    Exit 1 if either failed."""
    opts = options(ctx, json_out)
    _, paths = enrolled(opts)
    done = run(_sync(paths.socket))
    if opts.json:
        emit_json({"sync_error": done.sync_error or None,
                   "witness_error": done.witness_error or None,
                   "witness": None if done.witness_error else {
                       "size": done.size, "mirrored": done.mirrored, "cosigned": done.cosigned,
                       "controller_size": done.controller_size or None}})
    else:
        _print(done)
    if done.sync_error or done.witness_error:
        raise typer.Exit(1)


def _print(done: agent_pb2.SyncResponse) -> None:
    out, err = console(), console(stderr=True)
    if done.sync_error:  # the daemon then tries no witnessing round: nothing more to say
        err.print(f"error: sync with the controller failed: {done.sync_error}")
        return
    out.print("synced with the controller")
    if done.witness_error:
        err.print(f"error: witnessing: {done.witness_error}")
        return
    out.print(f"witnessed: the controller mirrors {done.mirrored} of this log's {done.size} "
              f"entries and cosigned it at size {done.cosigned}")
    if done.controller_size:
        out.print(f"this agent cosigned the controller's log at size {done.controller_size}")
