"""Parameter changes in a customer's allowlisted config files (scope config.write).

``rmctl config preview FILE key=value ...`` shows the keys' old and new values, the
file's diff (redacted by the agent) and a digest. The customer reviews it on their host
and consents to that digest (``rmagent approve-change``); only then does ``rmctl config
apply DIGEST`` change the file, exactly as previewed. ``rmctl config undo DIGEST``
previews putting the file back, which needs its own consent and ``config apply``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from controller.cli import _output as out
from controller.cli import _values
from controller.cli._app import Options, command, group
from controller.cli._operation import AgentOpt, CaseOpt, SessionOpt, run_operation
from rmaint.text import printable

config_app = group("config")
DigestArg = Annotated[str, typer.Argument(help="The change's full digest (sha256:...).",
                                           callback=_values.change_digest)]


def parse_assignment(text: str) -> tuple[str, Any]:
    """``key=value``: the value is JSON if it parses as a scalar (42, true, "x"), else text."""
    key, found, value = text.partition("=")
    if not found or not key.strip():
        raise typer.BadParameter(f"{text!r}: expected KEY=VALUE")
    try:
        parsed = json.loads(value)
    except ValueError:
        return key.strip(), value
    return key.strip(), parsed if isinstance(parsed, bool | int | float | str) else value


@command(config_app, "preview")
def config_preview(
    opts: Options,
    file: Annotated[str, typer.Argument(help="The file, as the customer named it.")],
    assignments: Annotated[list[str], typer.Argument(
        metavar="KEY=VALUE...", help="Allowlisted keys and their new values.")],
    session: SessionOpt = "", case: CaseOpt = "", agent: AgentOpt = "",
) -> None:
    """Preview a change of allowlisted keys: old and new values, the diff, the digest."""
    changes = dict(parse_assignment(a) for a in assignments)
    if len(changes) != len(assignments):
        raise typer.BadParameter("a key is given twice")
    run_operation(opts, "config.preview", {"file": file, "changes": changes}, _show_preview,
                  (session, case, agent))


@command(config_app, "apply")
def config_apply(opts: Options, digest: DigestArg, session: SessionOpt = "",
                 case: CaseOpt = "", agent: AgentOpt = "") -> None:
    """Apply a previewed change (or undo) the customer consented to, exactly as previewed."""
    run_operation(opts, "config.apply", {"digest": digest}, _show_applied,
                  (session, case, agent))


@command(config_app, "undo")
def config_undo(opts: Options, digest: DigestArg, session: SessionOpt = "",
                case: CaseOpt = "", agent: AgentOpt = "") -> None:
    """Preview putting the file back as it was before an applied change (own consent)."""
    run_operation(opts, "config.undo", {"digest": digest}, _show_preview,
                  (session, case, agent))


def _show_preview(result: dict[str, Any]) -> None:
    if result.get("status") == "refused":
        _show_refused(result)
        return
    _changes_table(result)
    typer.echo(result["diff"], nl=False)
    undo = f"; undoes {result['undo_of']}" if result.get("undo_of") else ""
    out.note(f"expires {out.when(result['expires_at'])}{undo}")
    out.note(f"digest {result['digest']}")
    out.note("the customer consents with: rmagent approve-change " + result["digest"][:19])


def _show_applied(result: dict[str, Any]) -> None:
    validation = result.get("validation")
    if result.get("status") == "refused":
        _show_refused(result)
    elif result.get("status") == "validation-failed":
        out.note(f"not applied: {printable(str(result['reason']))}")  # the validator's words
    else:
        what = "undo" if result.get("undo_of") else "change"
        out.note(f"applied {what} {result['digest']} to {result['file']}")
        _changes_table(result)
    if validation:
        state = "timed out" if validation["timed_out"] else f"exit {validation['exit_code']}"
        out.note(f"validation {' '.join(validation['argv'] or [])}: {state}")
        if validation["output"]:
            typer.echo(validation["output"], nl=False)


def _show_refused(result: dict[str, Any]) -> None:
    """Why nothing was changed; with the three sha256 and the diff when the file moved."""
    out.note(f"refused, nothing was changed: {printable(str(result['reason']))}")
    view = result.get("view")
    if not view:
        return
    out.table(result["file"], ("", "sha256"), [("before", view["before_sha256"]),
                                               ("after", view["after_sha256"]),
                                               ("current", view["current_sha256"])])
    typer.echo(view["diff_after_to_current"], nl=False)


def _changes_table(result: dict[str, Any]) -> None:
    out.table(result["file"], ("Key", "Before", "After"),
              [(c["key"], _cell(c["old"]), _cell(c["new"])) for c in result["changes"]])


def _cell(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
