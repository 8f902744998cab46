"""Looking at consent: the requests received and the grants given."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from agent.cli._common import (
    JsonOption,
    console,
    emit_json,
    enrolled,
    options,
    run,
    warn,
)
from agent.cli._errors import UserError, guarded
from agent.cli._render import (
    grant_dict,
    key_change,
    print_grants,
    print_requests,
    request_dict,
)
from agent.homes import command_for
from agent.local_client import KnownGrant, LocalClient, ReceivedRequest

AllOption = Annotated[bool, typer.Option("--all", help="Include decided, expired or revoked.")]


async def fetch_requests(socket: Path, *, include_decided: bool,
                         sync: bool) -> tuple[list[ReceivedRequest], str]:
    async with LocalClient(socket) as client:
        return await client.list_requests(include_decided=include_decided, sync=sync)


async def fetch_grants(socket: Path, *, include_inactive: bool) -> list[KnownGrant]:
    async with LocalClient(socket) as client:
        return await client.list_grants(include_inactive=include_inactive)


def pending_request(socket: Path, request_id: str) -> ReceivedRequest:
    """The request ``request_id`` if the agent holds it and it awaits a decision."""
    items, _ = run(fetch_requests(socket, include_decided=True, sync=False))
    if not any(item.request.request_id == request_id for item in items):
        # Filed moments ago: the daemon fetches requests every few seconds; ask it now.
        items, _ = run(fetch_requests(socket, include_decided=True, sync=True))
    for item in items:
        if item.request.request_id == request_id:
            if item.status != "pending":
                raise UserError(f"request {request_id} is {item.status}: "
                                "only pending requests can be decided")
            return item
    raise UserError(f"the agent has no request {request_id}: see 'rmagent requests'")


def known_grant(socket: Path, grant_id: str) -> KnownGrant:
    """The grant ``grant_id`` if the agent holds it and it is not revoked yet."""
    for item in run(fetch_grants(socket, include_inactive=True)):
        if item.grant.grant_id == grant_id:
            if item.revoked_at or item.status == "revoked":
                raise UserError(f"grant {grant_id} is already revoked")
            return item
    raise UserError(f"the agent has no grant {grant_id}: see 'rmagent grants --all'")


@guarded
def requests(ctx: typer.Context, show_all: AllOption = False,
             json_out: JsonOption = False) -> None:
    """Access requests from engineers (fetches new ones from the controller first)."""
    opts = options(ctx, json_out)
    _, paths = enrolled(opts)
    items, sync_error = run(fetch_requests(paths.socket, include_decided=show_all, sync=True))
    if opts.json:
        emit_json({"requests": [request_dict(i) for i in items], "sync_error": sync_error})
        return
    if sync_error:
        warn(f"could not fetch new requests from the controller: {sync_error}")
    if not items:
        console().print("no requests" if show_all else "no pending requests")
        return
    print_requests(console(), items, "Access requests" if show_all else "Pending requests")
    for item in items:
        if item.key_changed and item.status == "pending":
            _print_key_change(item, opts.home)
    for engineer, keys in rival_keys(items).items():
        console().print(
            f"KEY CONFLICT: no key is pinned for {engineer!r} yet and pending requests in that "
            f"name are signed by {len(keys)} different keys ({', '.join(keys)}): check with "
            f"{engineer} by another channel which key is theirs and deny the others; approving "
            "one needs --accept-new-key", style="bold red", soft_wrap=True)
    if not show_all:
        console().print(f"decide with '{command_for('approve <request>', opts.home)}' or "
                        f"'{command_for('deny <request>', opts.home)}'")


def rival_keys(items: Sequence[ReceivedRequest]) -> dict[str, list[str]]:
    """Engineer names with no pinned key whose pending requests carry different keys."""
    keys: dict[str, set[str]] = {}
    for item in items:
        if item.status == "pending" and not item.pinned_keys:
            keys.setdefault(item.request.engineer, set()).add(item.request.engineer_key_id)
    return {name: sorted(found) for name, found in sorted(keys.items()) if len(found) > 1}


def _print_key_change(item: ReceivedRequest, home: Path) -> None:
    # Shown in full, never folded: the customer checks the new key with the engineer.
    out = console()
    out.print(key_change(item), style="bold red", soft_wrap=True)
    out.print(f"  the controller can file requests in any engineer's name: check the new key "
              f"with {item.request.engineer} by another channel before approving it with "
              f"'{command_for(f'approve {item.request.request_id} --accept-new-key', home)}'",
              soft_wrap=True)


@guarded
def grants(ctx: typer.Context, show_all: AllOption = False,
           json_out: JsonOption = False) -> None:
    """Grants given on this agent (active ones, or all with --all)."""
    opts = options(ctx, json_out)
    _, paths = enrolled(opts)
    items = run(fetch_grants(paths.socket, include_inactive=show_all))
    if opts.json:
        emit_json({"grants": [grant_dict(i) for i in items]})
    elif not items:
        console().print("no grants" if show_all else "no active grants")
    else:
        print_grants(console(), items, "Grants" if show_all else "Active grants")
