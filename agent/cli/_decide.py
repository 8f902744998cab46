"""Deciding: approve (narrowing only, after confirmation), deny and revoke, signed here."""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from agent.approvals import (
    GrantPlan,
    choose_approver,
    load_approver_key,
    plan_grant,
    sign_denial,
    sign_revocation,
)
from agent.cli._common import JsonOption, Options, console, emit_json, enrolled, options, run
from agent.cli._consent import known_grant, pending_request
from agent.cli._errors import UserError, guarded
from agent.cli._render import local_time, short_key
from agent.config import PinnedApprover
from agent.local_client import Delivery, LocalClient
from permissions import Envelope, Grant, format_duration, parse_duration

ApproverOption = Annotated[str | None, typer.Option(
    "--approver", help="Pinned approver to sign with (needed when several are pinned).")]


async def _deliver(socket: Path, send: Callable[[LocalClient, Envelope], Awaitable[Delivery]],
                   envelope: Envelope) -> Delivery:
    async with LocalClient(socket) as client:
        return await send(client, envelope)


def _reported(delivery: Delivery) -> str:
    if delivery.reported:
        return "reported to the controller"
    return "not reported to the controller yet (the agent retries)"


@guarded
def approve(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="The request to approve, e.g. R-...")],
    scope: Annotated[list[str] | None, typer.Option(
        "--scope", help="Grant only this scope (repeat); default: all scopes asked for.")] = None,
    for_: Annotated[str | None, typer.Option(
        "--for", help="Grant for this long, e.g. 30m or 1h; at most what was asked.")] = None,
    approver: ApproverOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    json_out: JsonOption = False,
) -> None:
    """Sign a grant for a pending request, narrowed if asked, after confirmation."""
    opts = options(ctx, json_out)
    config, paths = enrolled(opts)
    signer = choose_approver(config.approvers, approver)
    key = load_approver_key(paths, signer)
    duration = parse_duration(for_) if for_ is not None else None
    item = pending_request(paths.socket, request_id)
    plan = plan_grant(item.request, scopes=scope or (), duration_seconds=duration)
    _confirm(opts, plan, signer, yes)
    envelope = plan.sign(key, now=int(time.time()))
    delivery = run(_deliver(paths.socket, LocalClient.approve, envelope))
    _show_grant(opts, Grant.from_payload(envelope.payload), signer, delivery)


def _preview(plan: GrantPlan, signer: PinnedApprover) -> list[tuple[str, str]]:
    r = plan.request
    narrowed = set(plan.scopes) != set(r.scopes)
    shorter = plan.duration_seconds != r.duration_seconds
    return [
        ("request", r.request_id), ("case", r.case_id), ("agent", r.agent_id),
        ("engineer", r.engineer), ("engineer key", r.engineer_key_id),
        ("reason", r.reason),
        ("scopes", ", ".join(plan.scopes)
         + (f"  (asked: {', '.join(r.scopes)})" if narrowed else "")),
        ("for", format_duration(plan.duration_seconds)
         + (f"  (asked: {format_duration(r.duration_seconds)})" if shorter else "")
         + ", starting when approved"),
        ("approver", f"{signer.name} ({short_key(signer.key_id)})"),
    ]


def _print_preview(out: Console, rows: list[tuple[str, str]]) -> None:
    # Plain lines, never folded: the customer compares the key id with the engineer's.
    width = max(len(label) for label, _ in rows)
    out.print("About to grant:", style="bold")
    for label, value in rows:
        out.print(f"  {label:<{width}}  {value}", soft_wrap=True)


def _interactive() -> bool:
    return sys.stdin.isatty()


def _confirm(opts: Options, plan: GrantPlan, signer: PinnedApprover, yes: bool) -> None:
    """Show what will be granted (unless --yes with --json) and ask unless --yes."""
    if not yes and not _interactive():
        raise UserError("not approved: confirmation needs a terminal; "
                        "pass --yes to approve without asking")
    if not (yes and opts.json):
        _print_preview(console(stderr=opts.json), _preview(plan, signer))
    if not yes and not typer.confirm("Grant this access?", default=False, err=opts.json):
        raise UserError("not approved")


def _show_grant(opts: Options, grant: Grant, signer: PinnedApprover,
                delivery: Delivery) -> None:
    if opts.json:
        emit_json({"grant_id": grant.grant_id, "request_id": grant.request_id,
                   "case_id": grant.case_id, "engineer": grant.engineer,
                   "engineer_key_id": grant.engineer_key_id, "scopes": list(grant.scopes),
                   "not_before": grant.not_before, "not_after": grant.not_after,
                   "approver": signer.name, "approver_key_id": signer.key_id,
                   "reported": delivery.reported})
        return
    console().print(
        f"approved {grant.request_id}: grant {grant.grant_id} for {grant.engineer}, "
        f"scopes {', '.join(grant.scopes)}, until {local_time(grant.not_after)}; "
        f"{_reported(delivery)}")


@guarded
def deny(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="The request to deny.")],
    reason: Annotated[str, typer.Option(help="Why, for the engineer and the consent log.")],
    approver: ApproverOption = None,
    json_out: JsonOption = False,
) -> None:
    """Sign a denial of a pending request."""
    opts = options(ctx, json_out)
    config, paths = enrolled(opts)
    signer = choose_approver(config.approvers, approver)
    key = load_approver_key(paths, signer)
    item = pending_request(paths.socket, request_id)
    envelope = sign_denial(item.request, key, reason=reason, now=int(time.time()))
    delivery = run(_deliver(paths.socket, LocalClient.deny, envelope))
    if opts.json:
        emit_json({"request_id": request_id, "reported": delivery.reported})
    else:
        console().print(f"denied {request_id}; {_reported(delivery)}")


@guarded
def revoke(
    ctx: typer.Context,
    grant_id: Annotated[str, typer.Argument(help="The grant to revoke, e.g. G-...")],
    reason: Annotated[str, typer.Option(help="Why, for the consent log.")] = "",
    approver: ApproverOption = None,
    json_out: JsonOption = False,
) -> None:
    """Revoke a grant now: operations in flight are cancelled, later ones denied."""
    opts = options(ctx, json_out)
    config, paths = enrolled(opts)
    signer = choose_approver(config.approvers, approver)
    key = load_approver_key(paths, signer)
    item = known_grant(paths.socket, grant_id)
    envelope = sign_revocation(item.grant, key, reason=reason, now=int(time.time()))
    delivery = run(_deliver(paths.socket, LocalClient.revoke, envelope))
    if opts.json:
        emit_json({"grant_id": grant_id, "cancelled_operations": delivery.cancelled_operations,
                   "reported": delivery.reported})
    else:
        console().print(f"revoked {grant_id}: {delivery.cancelled_operations} in-flight "
                        f"operation(s) cancelled; {_reported(delivery)}")
