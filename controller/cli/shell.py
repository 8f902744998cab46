"""Interactive login: ``rmctl ssh`` and ``rmctl ssh-cert`` (engineer), ``rmctl gateway-key``
(controller home) and the replay behind ``rmctl session replay``.

``rmctl ssh-cert`` runs the signed operation ``shell.open`` in the session and gets from
the controller an OpenSSH certificate on the engineer's identity key that carries the
ticket (principal: the agent id), saved as ``<identity key>-cert.pub`` (0644) where a
stock client finds it: ``ssh -i <key> -p PORT <agent>@gateway``. ``rmctl ssh`` does the
same and replaces itself with the real OpenSSH client, logging in as the agent id with
the identity key, that certificate and the gateway's pinned host key. The ticket is
single-use and lives ≤ 60 s, and only the engineer's key can redeem it.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from controller.cli import _output as out
from controller.cli._app import Options, app, command, fail
from controller.cli._operation import AgentOpt, CaseOpt, SessionOpt
from controller.cli._outfile import write_whole
from controller.cli._run import with_client, with_workflow

if TYPE_CHECKING:
    from controller.client.workflow import EngineerWorkflow

TICKET_TTL = 60
SSH = "ssh"
CERT_SUFFIX = "-cert.pub"  # OpenSSH pairs <key> with <key>-cert.pub


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
    issued = with_workflow(opts, lambda w: _certificate(w, (session, case, agent_opt), agent))
    # OpenSSH finds the certificate beside the key (a CertificateFile would need the key's
    # public half beside it too, which a PEM identity key does not have).
    argv = [SSH, "-tt", "-p", port, "-i", str(issued.key), "-o", "IdentitiesOnly=yes",
            "-o", "IdentityAgent=none", "-o", "PasswordAuthentication=no",
            "-o", "KbdInteractiveAuthentication=no", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={known_hosts.resolve()}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-l", issued.agent_id, host]
    if dry_run:
        out.emit_json(argv)
        return
    program = shutil.which(SSH)
    if program is None:
        raise fail("the OpenSSH client (ssh) is not installed")
    sys.stdout.flush()
    os.execv(program, argv)  # noqa: S606  # the engineer's own ssh, argv built above


@command(app, "ssh-cert")
def ssh_cert(
    opts: Options,
    agent: Annotated[str, typer.Argument(metavar="[AGENT]", help="Agent to log in to "
                                         "(default: the session's).", show_default=False)] = "",
    session: SessionOpt = "", case: CaseOpt = "", agent_opt: AgentOpt = "",
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Where to save it (default: <identity key>-cert.pub, where "
        "ssh -i <identity key> finds it; elsewhere, name it <copy of the key>-cert.pub).",
        show_default=False)] = None,
    valid: Annotated[int, typer.Option(
        "--valid", min=0, max=TICKET_TTL, help="Seconds it is valid (0: the ticket's life, "
        "at most 60).")] = 0,
) -> None:
    """Get a one-login OpenSSH certificate for plain ssh (scope shell).

    Then 'ssh -i KEY -o UserKnownHostsFile=FILE -p PORT AGENT@GATEWAY', FILE holding
    the line 'rmctl gateway-key' prints."""
    issued = with_workflow(opts, lambda w: _certificate(w, (session, case, agent_opt), agent,
                                                         output=output, valid=valid))
    if opts.json:
        out.emit_json({"certificate": str(issued.path), "identity": str(issued.key),
                       "principal": issued.agent_id, "valid_after": issued.valid_after,
                       "valid_before": issued.valid_before})
        return
    until = time.strftime("%H:%M:%S UTC", time.gmtime(issued.valid_before))
    typer.echo(f"certificate for {issued.agent_id}, one login until {until}: {issued.path}")
    name = str(issued.path)
    key = Path(name.removesuffix(CERT_SUFFIX)) if name.endswith(CERT_SUFFIX) else None
    if key is None:
        typer.echo(f"OpenSSH takes it as <key file>{CERT_SUFFIX} beside a copy of {issued.key}")
        return
    copy = "" if key == issued.key else f" (a copy of {issued.key} there)"
    typer.echo(f"log in with: ssh -i {key} -o UserKnownHostsFile=KNOWN_HOSTS -p PORT "
               f"{issued.agent_id}@GATEWAY{copy}")
    typer.echo("  KNOWN_HOSTS: a file holding the line 'rmctl gateway-key' prints for the gateway")


@dataclass(frozen=True)
class _Issued:
    agent_id: str
    key: Path
    path: Path
    valid_after: int
    valid_before: int


def _default_path(key: Path) -> Path:
    return key.with_name(key.name + CERT_SUFFIX)


async def _certificate(workflow: EngineerWorkflow, where: tuple[str, str, str], agent: str,
                       *, output: Path | None = None, valid: int = 0) -> _Issued:
    """Run ``shell.open``, get the certificate that carries its ticket and save it."""
    from controller.client.errors import InputError
    from pki.files import write_public

    state = await workflow.session_for(*(w or None for w in where))
    if agent and agent != state.agent_id:
        raise InputError(f"session {state.session_id} is on agent {state.agent_id}, "
                         f"not {agent}")
    result = await workflow.run(state, "shell.open", {"ttl": TICKET_TTL})
    reply = await workflow.shell_certificate(state, str(result.result["ticket"]),
                                             float(result.result["expires_at"]),
                                             valid_seconds=valid)
    key = workflow.config.key
    path = output or _default_path(key)
    write_public(path, (reply.certificate + "\n").encode())
    return _Issued(state.agent_id, key, path, reply.valid_after, reply.valid_before)


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
           output: Path | None, index: int, force: bool = False) -> None:
    """Play (or save) the recording of ``session_id``, fetched from the controller."""
    from controller.gateway import asciicast

    if output is not None and not force and os.path.lexists(output):
        raise fail(f"{output} exists: pass --force to replace it")
    cast = _recording(opts, session_id, index)
    if output is not None:
        write_whole(output, cast, force=force)
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
