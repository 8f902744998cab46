"""Setting a host up: enroll, run the daemon, and the customer's approver keys."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from agent.approvals import DEFAULT_APPROVER, create_approver
from agent.cli._common import JsonOption, console, emit_json, enrolled, options, run
from agent.cli._errors import UserError, guarded
from agent.cli._render import print_table
from agent.config import DEFAULT_LISTEN, MODES, AgentPaths
from agent.enrollment import EnrolledAgent, enroll_home
from agent.homes import command_for
from rmaint.cli import OneLineUsage


@guarded
def enroll(
    ctx: typer.Context,
    token: Annotated[str, typer.Option(
        "--token", help="The join token from the service company; '-' reads it from stdin.")],
    listen: Annotated[str, typer.Option(
        help="host:port of this agent's mTLS server, given to the controller.")] = DEFAULT_LISTEN,
    force: Annotated[bool, typer.Option(
        "--force", help="Enroll again although the home is enrolled (keeps pinned approvers).",
    )] = False,
    dial_out: Annotated[bool, typer.Option(
        "--dial-out", help="Connect out to the controller instead of listening: no inbound "
        "port (the same as --mode dial-out; --listen is then unused).")] = False,
    mode: Annotated[str, typer.Option(
        help="direct (listen on --listen), dial-out (connect out to the controller) or "
        "both.")] = "direct",
    json_out: JsonOption = False,
) -> None:
    """Enroll this host as an agent with a one-time join token."""
    opts = options(ctx, json_out)
    if dial_out:
        mode = "dial-out"
    if mode not in MODES:
        raise UserError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    result = run(enroll_home(opts.home, _token_text(token), listen=listen, force=force,
                             mode=mode))
    if opts.json:
        emit_json(_enrolled_dict(result))
        return
    _show_enrolled(result)


def _token_text(given: str) -> str:
    text = sys.stdin.readline() if given == "-" else given
    if not text.strip():
        raise UserError("the join token is empty")
    return text


def _enrolled_dict(result: EnrolledAgent) -> dict[str, object]:
    return {"home": str(result.home), "agent_id": result.agent_id,
            "trust_domain": result.trust_domain, "controller": result.controller,
            "listen": result.listen, "kept_approvers": result.kept_approvers,
            "mode": result.mode}


def _show_enrolled(result: EnrolledAgent) -> None:
    out = console()
    out.print(f"enrolled as agent {result.agent_id} of {result.trust_domain}")
    reached = {"direct": f"listening on {result.listen}", "dial-out": "connecting out",
               "both": f"connecting out and listening on {result.listen}"}[result.mode]
    out.print(f"  controller {result.controller or '-'}, {reached}")
    out.print(f"  home {result.home}")
    if result.kept_approvers:
        out.print(f"  kept {result.kept_approvers} pinned approver(s)")
    else:
        out.print(f"next: '{command_for('approver init', result.home)}' to create the customer's "
                  "approver key")
    out.print(f"then: '{command_for('run', result.home)}' to start the agent")


@guarded
def run_daemon(ctx: typer.Context) -> None:
    """Run the agent daemon in the foreground (stop it with Ctrl-C or SIGTERM).

    The home comes from the global --home, given before the command
    ('rmagent --home DIR run'), else RMAINT_HOME, else ~/.rmaint-agent.

    agent.toml is read at start: restart the agent after editing it (the diag,
    data, params, services and other allowlists). Only the pinned approvers
    are re-read while it runs.

    The daemon logs JSON lines to agent.log in the home and to stderr.
    """
    opts = options(ctx)
    enrolled(opts)  # a clear error for a home that is not enrolled, before anything starts
    from agent.daemon import run as run_agent  # the daemon's imports are heavy: load on use

    run_agent(opts.home)


approver_app = typer.Typer(help="The customer's approver keys, which sign every consent.",
                           no_args_is_help=True, cls=OneLineUsage)


@approver_app.command("init")
@guarded
def approver_init(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(
        help="Name of the approver (a-z, 0-9, '-').")] = DEFAULT_APPROVER,
    json_out: JsonOption = False,
) -> None:
    """Create an Ed25519 approver key here and pin its public key in agent.toml."""
    opts = options(ctx, json_out)
    _, paths = enrolled(opts)
    pin, path = create_approver(paths, name)
    if opts.json:
        emit_json({"name": pin.name, "key_id": pin.key_id, "key_path": str(path)})
        return
    out = console()
    out.print(f"approver {pin.name} created and pinned in {paths.config}")
    out.print(f"  key id {pin.key_id}")
    out.print(f"  private key {path} (mode 0600: keep it to this user)")


@approver_app.command("list")
@guarded
def approver_list(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """List the pinned approvers and whether their private key is on this host."""
    opts = options(ctx, json_out)
    config, paths = enrolled(opts)
    rows = [(a.name, a.key_id, _has_key(paths, a.name)) for a in config.approvers]
    if opts.json:
        emit_json({"approvers": [{"name": n, "key_id": k, "key_on_host": h == "yes"}
                                 for n, k, h in rows]})
    elif not rows:
        console().print(f"no approver is pinned: create one with '{command_for('approver init', opts.home)}'")
    else:
        print_table(console(), "Pinned approvers", ("Name", "Key id", "Key on this host"), rows)


def _has_key(paths: AgentPaths, name: str) -> str:
    return "yes" if paths.approver_key(name).is_file() else "no"

