"""Interactive login: ``rmctl ssh`` (engineer), ``rmctl gateway-key`` (controller home) and
the replay behind ``rmctl session replay``.

``rmctl ssh`` runs the signed operation ``shell.open`` in the session, then replaces
itself with the real OpenSSH client, logging in to the gateway as
``<agent-id>+<ticket>`` with the engineer's identity key and the gateway's pinned host
key. Nothing of the ticket is written anywhere; it is single-use and lives ≤ 60 s.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from controller.cli import _output as out
from controller.cli._app import Options, app, command, fail
from controller.cli._operation import AgentOpt, CaseOpt, SessionOpt
from controller.cli._run import with_client, with_workflow

if TYPE_CHECKING:
    from controller.client.workflow import EngineerWorkflow

TICKET_TTL = 60
SSH = "ssh"


@command(app, "ssh")
def ssh(
    opts: Options,
    gateway: Annotated[str, typer.Option(help="The gateway's HOST:PORT.")],
    known_hosts: Annotated[Path, typer.Option(
        help="known_hosts file pinning the gateway's key (from 'rmctl gateway-key').")],
    agent: Annotated[str, typer.Argument(metavar="[AGENT]", help="Agent to log in to "
                                         "(default: the session's).", show_default=False)] = "",
    session: SessionOpt = "", case: CaseOpt = "", agent_opt: AgentOpt = "",
    dry_run: Annotated[bool, typer.Option(
        "--print", help="Print the ssh command (JSON argv) instead of running it.")] = False,
) -> None:
    """Log in to an agent through the SSH gateway (scope shell; recorded)."""
    host, _, port = gateway.rpartition(":")
    if not host or not port.isdigit():
        raise fail(f"--gateway must be HOST:PORT, not {gateway!r}")
    if not known_hosts.is_file():
        raise fail(f"no known_hosts file {known_hosts}")
    agent_id, ticket, key = with_workflow(opts, lambda w: _ticket(w, (session, case, agent_opt),
                                                                  agent))
    argv = [SSH, "-tt", "-p", port, "-i", str(key), "-o", "IdentitiesOnly=yes",
            "-o", "IdentityAgent=none", "-o", "PasswordAuthentication=no",
            "-o", "KbdInteractiveAuthentication=no", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={known_hosts.resolve()}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-l", f"{agent_id}+{ticket}", host]
    if dry_run:
        out.emit_json(argv)
        return
    program = shutil.which(SSH)
    if program is None:
        raise fail("the OpenSSH client (ssh) is not installed")
    sys.stdout.flush()
    os.execv(program, argv)  # noqa: S606  # the engineer's own ssh, argv built above


async def _ticket(workflow: EngineerWorkflow, where: tuple[str, str, str],
                  agent: str) -> tuple[str, str, Path]:
    from controller.client.errors import InputError

    state = await workflow.session_for(*(w or None for w in where))
    if agent and agent != state.agent_id:
        raise InputError(f"session {state.session_id} is on agent {state.agent_id}, "
                         f"not {agent}")
    result = await workflow.run(state, "shell.open", {"ttl": TICKET_TTL})
    return state.agent_id, str(result.result["ticket"]), workflow.config.key


@command(app, "gateway-key")
def gateway_key(
    opts: Options,
    host: Annotated[str, typer.Option(help="The gateway host name engineers dial.")] = "",
) -> None:
    """Print the known_hosts line that pins this controller's SSH gateway key."""
    from controller.config import load_config
    from controller.gateway.hostkey import known_hosts_line, load_or_create

    config = load_config(opts.home)
    if config.gateway_listen is None:
        raise fail("the gateway is off: set gateway_listen in [controller] of rmctl.toml")
    line = known_hosts_line(load_or_create(config.home), host or config.gateway_listen.host,
                            config.gateway_listen.port)
    if opts.json:
        out.emit_json({"known_hosts": line})
        return
    typer.echo(line)


def replay(opts: Options, session_id: str, *, speed: float, no_wait: bool,
           output: Path | None, index: int) -> None:
    """Play (or save) the recording of ``session_id``, fetched from the controller."""
    from controller.gateway import asciicast

    cast = _recording(opts, session_id, index)
    if output is not None:
        output.write_bytes(cast)
        out.note(f"saved {len(cast)} bytes to {output}")
        return
    _, events = asciicast.parse(cast)
    stream = sys.stdout.buffer
    for wait, event in asciicast.timed(events, speed):
        if event.code != "o":
            continue
        if not no_wait and wait > 0:
            time.sleep(min(wait, 5.0))  # long pauses are cut to 5 s
        stream.write(event.raw())
        stream.flush()


def _recording(opts: Options, session_id: str, index: int) -> bytes:
    return with_client(opts, lambda client: client.recording(session_id, index))
