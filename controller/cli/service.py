"""Allowlisted services on a customer's host (scope service.control).

``rmctl service status NAME`` shows the state. ``rmctl service preview NAME ACTION``
shows the state now and the state the action leads to, with a digest; ``rmctl service
apply DIGEST`` runs it and verifies the result. Stop and restart need the customer's
consent to the digest first (``rmagent approve-change``); start and reload do not.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from controller.cli import _output as out
from controller.cli import _values
from controller.cli._app import Options, command, group
from controller.cli._operation import AgentOpt, CaseOpt, SessionOpt, run_operation

service_app = group("service")
NameArg = Annotated[str, typer.Argument(help="The service, as the customer named it.")]
ACTIONS = ("start", "stop", "restart", "reload")


@command(service_app, "status")
def service_status(opts: Options, name: NameArg, session: SessionOpt = "", case: CaseOpt = "",
                   agent: AgentOpt = "") -> None:
    """The service's state, main process and since when."""
    run_operation(opts, "service.status", {"name": name}, _show_status, (session, case, agent))


@command(service_app, "preview")
def service_preview(
    opts: Options, name: NameArg,
    action: Annotated[str, typer.Argument(help="start, stop, restart or reload.")],
    session: SessionOpt = "", case: CaseOpt = "", agent: AgentOpt = "",
) -> None:
    """The state now, the state after the action, and the digest to apply."""
    if action not in ACTIONS:
        raise typer.BadParameter(f"{action!r}: expected one of {', '.join(ACTIONS)}")
    run_operation(opts, "service.preview", {"name": name, "action": action}, _show_preview,
                  (session, case, agent))


@command(service_app, "apply")
def service_apply(
    opts: Options,
    digest: Annotated[str, typer.Argument(help="The preview's full digest (sha256:...).",
                                          callback=_values.change_digest)],
    session: SessionOpt = "", case: CaseOpt = "", agent: AgentOpt = "",
) -> None:
    """Run a previewed action (stop and restart: once the customer consented); verified."""
    run_operation(opts, "service.apply", {"digest": digest}, _show_applied,
                  (session, case, agent))


def _state(state: dict[str, Any]) -> str:
    pid = f" (pid {state['pid']})" if state.get("pid") else ""
    return f"{state['state']}{pid}"


def _show_status(result: dict[str, Any]) -> None:
    since = out.when(result["since"]) if result.get("since") else "-"
    out.table("Service", ("Service", "Backend", "State", "Since", "Detail"),
              [(result["name"], result["backend"], _state(result), since,
                result.get("detail") or "")])


def _show_preview(result: dict[str, Any]) -> None:
    out.table("Service action", ("Service", "Action", "Now", "After"),
              [(result["name"], result["action"], _state(result["current"]),
                result["expected"])])
    out.note(f"expires {out.when(result['expires_at'])}")
    out.note(f"digest {result['digest']}")
    if result["needs_consent"]:
        out.note("the customer consents with: rmagent approve-change " + result["digest"][:19])
    else:
        out.note(f"{result['action']} needs no consent: rmctl service apply {result['digest']}")


def _show_applied(result: dict[str, Any]) -> None:
    if result.get("status") != "applied":
        out.note(f"{result['status']}: {result['reason']}")
        out.table("Service", ("Service", "Previewed", "Now"),
                  [(result["name"], _state(result["before"]), _state(result["now"]))])
        return
    out.table("Service action", ("Service", "Action", "Before", "After", "Seconds"),
              [(result["name"], result["action"], _state(result["before"]),
                _state(result["after"]), str(result["seconds"]))])
    out.note(f"applied {result['digest']}; verified {result['name']} is "
             f"{result['after']['state']}")
