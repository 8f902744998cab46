"""The customer's view of interactive logins: ``sessions``, ``watch S``, ``kill S``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from google.protobuf.json_format import MessageToDict

from agent.cli._common import JsonOption, console, emit_json, enrolled, options, run
from agent.cli._errors import guarded
from agent.cli._render import local_time, print_table
from agent.local_client import LocalClient
from rmaint.v1 import agent_pb2

ShellArg = Annotated[str, typer.Argument(metavar="SHELL", help="Shell id (see 'rmagent sessions').")]


async def _list(socket: Path) -> list[agent_pb2.LiveShell]:
    async with LocalClient(socket) as client:
        return await client.list_shells()


async def _kill(socket: Path, shell_id: str) -> agent_pb2.LiveShell:
    async with LocalClient(socket) as client:
        return await client.kill_shell(shell_id)


async def _watch(socket: Path, shell_id: str) -> str:
    """Copy the shell's output to stdout; how the shell ended ("" if the stream broke)."""
    stream = sys.stdout.buffer
    async with LocalClient(socket) as client:
        async for message in client.watch_shell(shell_id):
            if message.WhichOneof("kind") == "exit":
                return message.exit.reason
            stream.write(message.stdout)
            stream.flush()
    return ""


def _dict(shell: agent_pb2.LiveShell) -> dict[str, object]:
    return MessageToDict(shell, preserving_proto_field_name=True,
                         always_print_fields_with_no_presence=True)


@guarded
def sessions(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """Interactive shells running now: engineer, case, grant, start and idle time."""
    opts = options(ctx, json_out)
    _, paths = enrolled(opts)
    shells = run(_list(paths.socket))
    if opts.json:
        emit_json([_dict(s) for s in shells])
        return
    if not shells:
        console().print("no live shells")
        return
    print_table(console(), "Live shells", ("Shell", "Engineer", "Case", "Grant", "Session",
                                           "User", "Started", "Idle"),
                [(s.shell_id, s.engineer, s.case_id, s.grant_id, s.session_id, s.user,
                  local_time(s.started_at), f"{s.idle_seconds:.0f}s") for s in shells])


@guarded
def watch(ctx: typer.Context, shell_id: ShellArg) -> None:
    """Show a shell's output live, read-only, until it ends (Ctrl-C stops watching)."""
    opts = options(ctx)
    _, paths = enrolled(opts)
    try:
        reason = run(_watch(paths.socket, shell_id))
    except KeyboardInterrupt:
        return
    console(stderr=True).print(f"\nshell {shell_id} ended ({reason or 'stream closed'})")


@guarded
def kill(ctx: typer.Context, shell_id: ShellArg, json_out: JsonOption = False) -> None:
    """End a shell at once; the engineer's connection closes."""
    opts = options(ctx, json_out)
    _, paths = enrolled(opts)
    shell = run(_kill(paths.socket, shell_id))
    if opts.json:
        emit_json(_dict(shell))
        return
    console().print(f"shell {shell.shell_id} of {shell.engineer} (case {shell.case_id}) ended")
