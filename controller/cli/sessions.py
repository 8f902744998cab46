"""Remote sessions: open (becomes the current one), list, show, close."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from controller.cli import _output as out
from controller.cli._app import Options, command, group
from controller.cli._run import with_client, with_workflow
from controller.cli._tables import events_table, sessions_table

if TYPE_CHECKING:
    from rmaint.v1 import controller_pb2 as pb

session_app = group("session")


def _session_fields(s: pb.Session) -> list[tuple[str, str]]:
    return [
        ("Session", s.session_id), ("Engineer", s.engineer), ("Case", s.case_id),
        ("Agent", s.agent_id), ("Grant", s.grant_id), ("Started", out.when(s.started_at)),
        ("Ended", out.when(s.ended_at)), ("End reason", s.end_reason or "-"),
    ]


def _current(opts: Options) -> str | None:
    from controller.client.engineer import SessionStore
    from controller.client.errors import SessionStateError

    try:
        return SessionStore(opts.home).current_id()
    except SessionStateError:
        return None


@command(session_app, "open")
def session_open(
    opts: Options,
    case: Annotated[str, typer.Option(help="Case to work on.")],
    agent: Annotated[str, typer.Option(help="Agent to work on.")],
    grant: Annotated[str, typer.Option(
        help="Grant to work under (default: the newest active one for your key).")] = "",
) -> None:
    """Open a session under an active grant; it becomes the current session (the one
    before stays open until closed)."""
    before = _current(opts)
    opened = with_workflow(opts, lambda w: w.open_session(case, agent, grant))
    if opts.json:
        data = out.message_data(opened.session)
        data.update(grant_not_after=opened.grant_not_after, scopes=list(opened.scopes))
        out.emit_json(data)
        return
    s = opened.session
    out.note(f"session {s.session_id} open on agent {s.agent_id} (case {s.case_id}) "
             f"under grant {s.grant_id}")
    out.note(f"scopes {', '.join(opened.scopes)}; grant valid until "
             f"{out.when(opened.grant_not_after)}; this is now the current session")
    if before is not None and before != s.session_id:
        out.note(f"session {before} is no longer current; if it is still open, "
                 f"'rmctl session close {before}' ends it")


@command(session_app, "list")
def session_list(
    opts: Options, case: Annotated[str, typer.Option(help="Only this case.")] = "",
) -> None:
    """List sessions, newest first; * marks this home's current session."""
    sessions = with_client(opts, lambda c: c.list_sessions(case))
    if opts.json:
        out.emit_json(out.messages_data(sessions))
        return
    sessions_table(sessions, _current(opts))


@command(session_app, "show")
def session_show(
    opts: Options,
    session_id: Annotated[str, typer.Argument(metavar="SESSION", help="Session id.")],
) -> None:
    """Show a session and its events: outcome, duration and the agent's receipt digest."""
    reply = with_client(opts, lambda c: c.get_session(session_id))
    if opts.json:
        out.emit_json(out.message_data(reply))
        return
    out.fields(_session_fields(reply.session))
    events_table(reply.events)
    if reply.total_events > len(reply.events):
        out.note(f"the {len(reply.events)} newest of {reply.total_events} events: the others "
                 "are in 'audit export' of the session's case")


@command(session_app, "replay")
def session_replay(
    opts: Options,
    session_id: Annotated[str, typer.Argument(metavar="SESSION", help="Session id.")],
    speed: Annotated[float, typer.Option(min=0.01, help="Times real time.")] = 1.0,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Dump the output at once.")] = False,
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", help="Save the asciicast v2 file instead of playing it.")] = None,
    index: Annotated[int, typer.Option(help="Which recording of the session (-1: last).")] = -1,
    force: Annotated[bool, typer.Option("--force", help="Replace the -o file if it exists.")
                     ] = False,
) -> None:
    """Play a session's recorded shell with its timing, as fetched from the controller."""
    from controller.cli.shell import replay

    replay(opts, session_id, speed=speed, no_wait=no_wait, output=output, index=index,
           force=force)


@command(session_app, "close")
def session_close(
    opts: Options,
    session_id: Annotated[str | None, typer.Argument(
        metavar="[SESSION]", help="Session id (default: the current session).",
        show_default=False)] = None,
) -> None:
    """Close a session (default: the current one)."""
    session = with_workflow(opts, lambda w: w.close_session(session_id))
    if opts.json:
        out.emit_json(out.message_data(session))
        return
    out.note(f"session {session.session_id} closed ({session.end_reason or 'closed'})")
