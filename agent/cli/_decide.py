"""Deciding: approve (narrowing only, after confirmation), deny and revoke, signed here.

Approving the first request from an engineer name pins its key on the agent. A request
from a known name signed by another key (KEY CHANGED) is refused unless the customer
gives --accept-new-key, after checking the key with the engineer; that pins it too.
"""

from __future__ import annotations

import functools
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
from agent.cli._common import (
    JsonOption,
    Options,
    console,
    emit_json,
    enrolled,
    options,
    plain_reason,
    run,
)
from agent.cli._consent import known_grant, pending_request
from agent.cli._errors import UserError, guarded
from agent.cli._render import key_change, key_standing, local_time, short_key
from agent.config import PinnedApprover
from agent.local_client import Delivery, LocalClient, ReceivedRequest
from permissions import Envelope, Grant, MalformedStatement, format_duration, parse_duration
from rmaint.text import printable

YesOption = Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")]
ApproverOption = Annotated[str | None, typer.Option(
    "--approver", help="Pinned approver to sign with (needed when several are pinned).")]


async def _deliver(socket: Path, send: Callable[[LocalClient, Envelope], Awaitable[Delivery]],
                   envelope: Envelope) -> Delivery:
    async with LocalClient(socket) as client:
        return await send(client, envelope)


def _reported(delivery: Delivery) -> str:
    return reported_text(delivery.reported)


def reported_text(reported: bool) -> str:
    if reported:
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
    accept_new_key: Annotated[bool, typer.Option(
        "--accept-new-key",
        help="Approve although the request is signed by another key than the one pinned "
             "for its engineer (KEY CHANGED), and pin that key too. Check the new key "
             "with the engineer first: the controller can file requests in any name.",
    )] = False,
    yes: YesOption = False,
    json_out: JsonOption = False,
) -> None:
    """Sign a grant for a pending request, narrowed if asked, after confirmation.

    The first approval for an engineer pins the key that signed the request.
    """
    opts = options(ctx, json_out)
    duration = _duration(for_) if for_ is not None else None
    config, paths = enrolled(opts)
    signer = choose_approver(config.approvers, approver)
    key = load_approver_key(paths, signer)
    item = pending_request(paths.socket, request_id)
    if item.key_changed and not accept_new_key:
        raise UserError(f"not approved: {key_change(item)}; check the new key with "
                        f"{item.request.engineer} by another channel, then approve with "
                        "--accept-new-key")
    plan = plan_grant(item.request, scopes=scope or (), duration_seconds=duration)
    _confirm(opts, item, plan, signer, yes)
    envelope = plan.sign(key, now=int(time.time()))
    # Accept a new key only when the customer saw it flagged: if pins changed meanwhile,
    # the agent refuses rather than accept a change nobody was shown.
    accept = accept_new_key and item.key_changed
    delivery = run(_deliver(paths.socket, functools.partial(
        LocalClient.approve, accept_new_key=accept), envelope))
    _show_grant(opts, Grant.from_payload(envelope.payload), signer, delivery, item)


def _preview(plan: GrantPlan, signer: PinnedApprover,
             item: ReceivedRequest) -> list[tuple[str, str]]:
    r = plan.request
    narrowed = set(plan.scopes) != set(r.scopes)
    shorter = plan.duration_seconds != r.duration_seconds
    return [
        ("request", r.request_id), ("case", r.case_id), ("agent", r.agent_id),
        ("engineer", r.engineer), ("engineer key", r.engineer_key_id),
        ("", key_standing(item)),
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
        # The reason is the engineer's text: shown so that it cannot pass for another line.
        out.print(f"  {label:<{width}}  {printable(value)}", soft_wrap=True)


def interactive() -> bool:
    return sys.stdin.isatty()


def _confirm(opts: Options, item: ReceivedRequest, plan: GrantPlan, signer: PinnedApprover,
             yes: bool) -> None:
    """Show what will be granted (unless --yes with --json) and ask unless --yes."""
    if not yes and not interactive():
        raise UserError("not approved: confirmation needs a terminal; "
                        "pass --yes to approve without asking")
    out = console(stderr=opts.json)
    if item.key_changed:  # shown even with --yes --json: on stderr, never folded
        out.print(key_change(item), style="bold red", soft_wrap=True)
    if not (yes and opts.json):
        _print_preview(out, _preview(plan, signer, item))
    if not yes and not typer.confirm(
            "Accept the new key and grant this access?" if item.key_changed
            else "Grant this access?", default=False, err=opts.json):
        raise UserError("not approved")


def _pin_note(item: ReceivedRequest) -> str:
    r = item.request
    if item.key_changed:
        return f"new key {r.engineer_key_id} accepted and pinned for {r.engineer}"
    if not item.pinned_keys:
        return f"key {r.engineer_key_id} pinned for {r.engineer}"
    return ""


def _show_grant(opts: Options, grant: Grant, signer: PinnedApprover,
                delivery: Delivery, item: ReceivedRequest) -> None:
    if opts.json:
        emit_json({"grant_id": grant.grant_id, "request_id": grant.request_id,
                   "case_id": grant.case_id, "engineer": grant.engineer,
                   "engineer_key_id": grant.engineer_key_id, "scopes": list(grant.scopes),
                   "not_before": grant.not_before, "not_after": grant.not_after,
                   "approver": signer.name, "approver_key_id": signer.key_id,
                   "reported": delivery.reported, "key_changed": item.key_changed,
                   "key_pinned": item.key_changed or not item.pinned_keys})
        return
    note = _pin_note(item)
    console().print(
        f"approved {grant.request_id}: grant {grant.grant_id} for {grant.engineer}, "
        f"scopes {', '.join(grant.scopes)}, until {local_time(grant.not_after)}; "
        f"{_reported(delivery)}" + (f"; {note}" if note else ""))


@guarded
def deny(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="The request to deny.")],
    reason: Annotated[str, typer.Option(help="Why, for the engineer and the consent log.",
                                        callback=plain_reason)],
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
    reason: Annotated[str, typer.Option(help="Why, for the consent log.",
                                        callback=plain_reason)] = "",
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
    delivery, shells = run(_revoke(paths.socket, envelope, grant_id))
    if opts.json:
        emit_json({"grant_id": grant_id, "cancelled_operations": delivery.cancelled_operations,
                   "ended_shells": shells, "reported": delivery.reported})
    else:
        console().print(f"revoked {grant_id}: {delivery.cancelled_operations} in-flight "
                        f"operation(s) cancelled, ended {shells} shell{'s' * (shells != 1)}; "
                        f"{_reported(delivery)}")


async def _revoke(socket: Path, envelope: Envelope, grant_id: str) -> tuple[Delivery, int]:
    """Deliver the revocation; with the number of shells it ended: those live under the
    grant just before (the agent ends every one of them as it takes the revocation)."""
    async with LocalClient(socket) as client:
        live = sum(1 for shell in await client.list_shells() if shell.grant_id == grant_id)
        return await client.revoke(envelope), live


def _duration(text: str) -> int:
    """``--for``'s seconds; a bad value is a usage error that names the option."""
    try:
        return parse_duration(text)
    except MalformedStatement as exc:
        raise typer.BadParameter(str(exc), param_hint="'--for'") from exc
