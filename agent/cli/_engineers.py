"""The engineer keys the customer has accepted (trust on first use), and forgetting them.

The first approval of a request from an engineer name pins the key that signed it; a
later request from that name signed by another key is flagged KEY CHANGED. The pins live
on this agent only: nothing the controller sends can add, change or remove one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agent.cli._common import JsonOption, console, emit_json, enrolled, options, run
from agent.cli._errors import guarded
from agent.cli._render import pin_dict, print_pins
from agent.local_client import EngineerPin, LocalClient
from rmaint.cli import OneLineUsage

engineers_app = typer.Typer(
    help="Engineer keys accepted on this agent: the first approval for an engineer pins "
         "the key that signed the request; another key under that name is flagged.",
    invoke_without_command=True, cls=OneLineUsage)


async def _pins(socket: Path) -> list[EngineerPin]:
    async with LocalClient(socket) as client:
        return await client.engineer_keys()


async def _forget(socket: Path, engineer: str, key_id: str) -> list[EngineerPin]:
    async with LocalClient(socket) as client:
        return await client.forget_engineer_keys(engineer, key_id)


def _list(ctx: typer.Context, json_out: bool) -> None:
    opts = options(ctx, json_out)
    _, paths = enrolled(opts)
    pins = run(_pins(paths.socket))
    if opts.json:
        emit_json({"engineers": [pin_dict(k) for k in pins]})
    elif not pins:
        console().print("no engineer key is pinned: approving a request pins its key")
    else:
        print_pins(console(), pins, "Pinned engineer keys")


@engineers_app.callback()
@guarded
def engineers(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """List the pinned engineer keys (or manage them with a subcommand)."""
    if ctx.invoked_subcommand is None:
        _list(ctx, json_out)


@engineers_app.command("list")
@guarded
def engineers_list(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """List the pinned engineer keys, with the approval that pinned each."""
    _list(ctx, json_out)


@engineers_app.command("forget")
@guarded
def forget(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The engineer name whose pinned keys to forget.")],
    key: Annotated[str, typer.Option(
        "--key", help="Forget only this key id (default: every key pinned for NAME).")] = "",
    json_out: JsonOption = False,
) -> None:
    """Forget the keys pinned for an engineer: the next approval for NAME pins afresh.

    Grants already given are not affected; revoke them with 'rmagent revoke'.
    """
    opts = options(ctx, json_out)
    _, paths = enrolled(opts)
    forgotten = run(_forget(paths.socket, name, key))
    if opts.json:
        emit_json({"forgotten": [pin_dict(k) for k in forgotten]})
        return
    for pin in forgotten:
        console().print(f"forgot {pin.engineer}'s key {pin.key_id}")
