"""Previewed changes: review them unmasked, consent to one digest, or deny it.

``rmagent changes`` lists pending previews (``--all`` adds decided ones), unmasked and
unredacted (this host is the customer's own): a data change with every row's before and
after values side by side, a config change with its keys and the file's diff, a service
action with the state it starts from and the state it leads to.
``rmagent approve-change D`` signs a change consent for the preview whose digest starts
with ``D`` (it must name exactly one pending preview), valid for 10 minutes and never past
the preview's expiry. ``rmagent deny-change D --reason ...`` refuses it.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from typing import Annotated, Any

import typer
from rich.console import Console

from agent.approvals import choose_approver, load_approver_key
from agent.cli import _decide
from agent.cli._common import (
    JsonOption,
    console,
    emit_json,
    enrolled,
    options,
    plain_reason,
    run,
)
from agent.cli._decide import ApproverOption, YesOption
from agent.cli._errors import UserError, guarded
from agent.cli._render import local_time, print_table, short_key
from agent.local_client import LocalClient
from permissions import DEFAULT_CHANGE_CONSENT_SECONDS, ChangeContext, consent_to_change
from rmaint.text import printable
from rmaint.v1 import agent_pb2

MIN_PREFIX = 8  # hex digits: a consent names its change, not whichever happens to be pending


def _digest_prefix(text: str) -> str:
    """``text`` if it is a SHA-256 digest or a prefix of at least MIN_PREFIX hex digits."""
    if not re.fullmatch(f"(sha256:)?[0-9a-f]{{{MIN_PREFIX},64}}", text):
        raise typer.BadParameter(f"give the change's digest as 'rmagent changes' shows it, or "
                                 f"at least its first {MIN_PREFIX} hex digits")
    return text


DigestArgument = Annotated[str, typer.Argument(
    help=f"The change's digest, or a prefix of it (at least {MIN_PREFIX} hex digits) naming "
         "one pending change.", callback=_digest_prefix)]


async def _list(socket: Any, include: bool, prefix: str = "",
                limit: int = 0) -> tuple[list[agent_pb2.PendingChange], int]:
    async with LocalClient(socket) as client:
        return await client.list_changes(include_decided=include, digest_prefix=prefix,
                                         limit=limit)


def _one_pending(socket: Any, prefix: str) -> agent_pb2.PendingChange:
    full = prefix if prefix.startswith("sha256:") else "sha256:" + prefix
    found, _ = run(_list(socket, False, full, limit=2))
    if not found:
        raise UserError(f"no pending change {prefix}: see 'rmagent changes'")
    if len(found) > 1:
        raise UserError(f"{prefix} names {len(found)} pending changes: give more of the digest")
    return found[0]


def change_dict(change: agent_pb2.PendingChange) -> dict[str, Any]:
    return {"digest": change.digest, "source": change.source, "status": change.status,
            "agent_id": change.agent_id, "case_id": change.case_id,
            "grant_id": change.grant_id, "engineer": change.engineer,
            "engineer_key_id": change.engineer_key_id, "created_at": change.created_at,
            "expires_at": change.expires_at, "undo_of": change.undo_of or None,
            **json.loads(change.detail_json)}


def _cell(value: Any) -> str:
    return "(none)" if value is None else json.dumps(value, ensure_ascii=False)


def _row_lines(row: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    before, after = row["before"] or {}, row["after"] or {}
    columns = list(dict.fromkeys([*before, *after]))
    label = f"{row['kind']} {row['table']} {_cell(row['key'])}"
    lines = []
    for column in columns:
        old, new = before.get(column), after.get(column)
        if row["before"] is not None and row["after"] is not None and old == new:
            continue  # unchanged columns of an update are left out
        lines.append((label, column, _cell(old) if row["before"] is not None else "-",
                      _cell(new) if row["after"] is not None else "-"))
        label = ""
    return lines


def _print_change(out: Console, change: dict[str, Any]) -> None:
    undo = f", undoes {short_key(change['undo_of'])}" if change["undo_of"] else ""
    kind = change.get("kind", "data")
    out.print(f"{change['digest']}  {kind} change, {change['status']}{undo}", style="bold",
              soft_wrap=True)
    what = {"config": "file", "service": "service"}.get(kind, "source")
    until = f", expires {local_time(change['expires_at'])}" \
        if change["status"] == "pending" else ""  # a decided change no longer expires
    out.print(f"  {what} {printable(change['source'])}, case {change['case_id']}, engineer "
              f"{change['engineer']} ({short_key(change['engineer_key_id'])}){until}",
              soft_wrap=True)
    {"config": _print_config, "service": _print_service}.get(kind, _print_rows)(out, change)


def _print_config(out: Console, change: dict[str, Any]) -> None:
    print_table(out, "", ("Key", "Before", "After"),
                [(c["key"], _cell(c["old"]), _cell(c["new"])) for c in change["changes"]])
    # The file's own lines and the engineer's values: each line shown inert (no escape,
    # no bidirectional reordering), the diff's line structure kept.
    diff = "\n".join(printable(line) for line in change["diff"].split("\n"))
    out.print(diff, markup=False, highlight=False, soft_wrap=True, end="")


def _print_service(out: Console, change: dict[str, Any]) -> None:
    current = change["current"]
    pid = f" (pid {current['pid']})" if current.get("pid") else ""
    print_table(out, "", ("Service", "Action", "Now", "After"),
                [(change["name"], change["action"], current["state"] + pid,
                  change["expected"])])
    if not change["needs_consent"]:
        out.print(f"  {change['action']} needs no consent; it is listed for the record")


def _print_rows(out: Console, change: dict[str, Any]) -> None:
    counts = change["counts"]
    out.print(f"  {counts['updates']} update(s), {counts['inserts']} insert(s), "
              f"{counts['deletes']} delete(s)")
    for effect in change["side_effects"]:
        out.print(f"  side effect: {effect['rows_changed']} other row(s) of "
                  f"{effect['table']} change too (triggers or cascades)", style="bold red")
    lines = [line for row in change["rows"] for line in _row_lines(row)]
    print_table(out, "", ("Row", "Column", "Before", "After"), lines)


DEFAULT_LIMIT = 50  # the newest; the full history of a long-served agent can be long
MAX_LIMIT = 10_000


@guarded
def changes(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Include applied, denied, expired.")] = False,
    limit: Annotated[int | None, typer.Option(
        min=1, max=MAX_LIMIT, help=f"Show the newest N changes (default {DEFAULT_LIMIT}; "
                                   "with --json, all).")] = None,
    json_out: JsonOption = False,
) -> None:
    """Changes previewed by engineers (data, config files, services), unmasked."""
    opts = options(ctx, json_out)
    _config, paths = enrolled(opts)
    if limit is None:
        limit = 0 if opts.json else DEFAULT_LIMIT  # a script gets every change, or says
    listed, total = run(_list(paths.socket, all_, limit=limit))
    found = [change_dict(c) for c in listed]
    if opts.json:
        emit_json(found)
        return
    out = console()
    if not found:
        out.print("no pending changes" if not all_ else "no changes")
    for change in found:
        _print_change(out, change)
    if total > len(found):
        more = f"--limit {total}" if total <= MAX_LIMIT else "--json"
        out.print(f"the {len(found)} newest of {total} changes: {more} shows all")


@guarded
def approve_change(
    ctx: typer.Context,
    digest: DigestArgument,
    approver: ApproverOption = None,
    yes: YesOption = False,
    json_out: JsonOption = False,
) -> None:
    """Sign consent to exactly one previewed change, shown first and confirmed: single use,
    valid for 10 minutes."""
    opts = options(ctx, json_out)
    config, paths = enrolled(opts)
    signer = choose_approver(config.approvers, approver)
    change = _one_pending(paths.socket, digest)
    _confirm_change(opts.json, change, yes)
    key = load_approver_key(paths, signer)
    context = ChangeContext(change_digest=change.digest, agent_id=change.agent_id,
                            case_id=change.case_id, grant_id=change.grant_id,
                            engineer_key_id=change.engineer_key_id)
    now = int(time.time())
    if change.expires_at <= now:
        raise UserError(f"change {change.digest} has expired")
    envelope = consent_to_change(context, key, consent_id=f"K-{secrets.token_hex(8)}",
                                 now=now, seconds=DEFAULT_CHANGE_CONSENT_SECONDS,
                                 expires_at=change.expires_at)
    reply = run(_approve(paths.socket, envelope))
    if opts.json:
        emit_json({"digest": reply.digest, "consent_id": reply.consent_id,
                   "not_after": reply.not_after, "approver": signer.name,
                   "reported": reply.reported})
    else:
        console().print(f"consented to {reply.digest} ({reply.consent_id}), single use, "
                        f"until {local_time(reply.not_after)}; {_decide.reported_text(reply.reported)}")


def _confirm_change(json_out: bool, change: agent_pb2.PendingChange, yes: bool) -> None:
    """Show the change (unless --yes with --json) and ask unless --yes."""
    if not yes and not _decide.interactive():  # one place to say what a terminal is
        raise UserError("not consented: confirmation needs a terminal; "
                        "pass --yes to consent without asking")
    if not (yes and json_out):
        _print_change(console(stderr=json_out), change_dict(change))
    if not yes and not typer.confirm("Consent to exactly this change?", default=False,
                                     err=json_out):
        raise UserError("not consented")


async def _approve(socket: Any, envelope: Any) -> agent_pb2.ApproveChangeResponse:
    async with LocalClient(socket) as client:
        return await client.approve_change(envelope)


@guarded
def deny_change(
    ctx: typer.Context,
    digest: DigestArgument,
    reason: Annotated[str, typer.Option(help="Why, for the agent's log.",
                                        callback=plain_reason)],
    json_out: JsonOption = False,
) -> None:
    """Refuse a previewed change: it can no longer be applied."""
    opts = options(ctx, json_out)
    _config, paths = enrolled(opts)
    change = _one_pending(paths.socket, digest)
    run(_deny(paths.socket, change.digest, reason))
    if opts.json:
        emit_json({"digest": change.digest, "status": "denied"})
    else:
        console().print(f"denied {change.digest}")


async def _deny(socket: Any, digest: str, reason: str) -> None:
    async with LocalClient(socket) as client:
        await client.deny_change(digest, reason)
