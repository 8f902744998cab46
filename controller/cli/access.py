"""Access requests (engineers) and the consent log (everyone who may read records)."""

from __future__ import annotations

from typing import Annotated

import typer

from controller.cli import _output as out
from controller.cli import _values
from controller.cli._app import Options, command, group
from controller.cli._run import with_client, with_workflow
from controller.cli._tables import consent_table, requests_table

access_app = group("access")
consent_app = group("consent")


@command(access_app, "request")
def access_request(
    opts: Options,
    case: Annotated[str, typer.Option(help="Case the access is for.")],
    agent: Annotated[str, typer.Option(help="Agent to access.")],
    scope: Annotated[list[str], typer.Option(help="Scope asked for, e.g. diag.read "
                                                  "(repeatable).")],
    duration: Annotated[str, typer.Option("--for", help="How long, e.g. 30m, 2h.",
                                          callback=_values.grant_duration)],
    reason: Annotated[str, typer.Option(help="Why the access is needed (the customer sees it).")],
) -> None:
    """Ask the customer for access: a request signed by your key, delivered to the agent."""
    from controller.client.inputs import parse_duration

    seconds = parse_duration(duration, "--for")  # checked as parsed (_values.grant_duration)
    request = with_workflow(opts, lambda w: w.request_access(
        case_id=case, agent_id=agent, scopes=scope, duration_seconds=seconds, reason=reason))
    if opts.json:
        out.emit_json(out.message_data(request))
        return
    out.note(f"request {request.request_id} filed for {', '.join(request.scopes)} on agent "
             f"{request.agent_id} (case {request.case_id}): {request.status}")
    out.note("the customer approves it on the agent host; follow it with "
             f"'rmctl access list --case {request.case_id}'")


@command(access_app, "list")
def access_list(
    opts: Options, case: Annotated[str, typer.Option(help="Only this case.")] = "",
) -> None:
    """List your access requests and their state, newest first."""
    requests = with_client(opts, lambda c: c.list_my_requests(case))
    if opts.json:
        out.emit_json(out.messages_data(requests))
        return
    requests_table(requests)


@command(consent_app, "log")
def consent_log(
    opts: Options,
    case: Annotated[str, typer.Option(help="Only this case.")] = "",
    agent: Annotated[str, typer.Option(help="Only this agent.")] = "",
    limit: Annotated[int, typer.Option(min=1, max=500,
                                       help="Show the newest N entries.")] = 100,
) -> None:
    """Every request, approval, denial, revocation and expiry, oldest first."""
    entries, total = with_client(opts, lambda c: c.consent_log(case, agent, limit))
    if opts.json:
        out.emit_json(out.messages_data(entries))
        return
    consent_table(entries)
    if total > len(entries):
        out.note(f"the {len(entries)} newest of {total} entries: --limit shows more "
                 "(up to 500), --case and --agent fewer")
