"""``rmctl agent install``: put an agent on a customer host over SSH and enroll it."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from controller.cli import _output as out
from controller.cli import _values
from controller.cli._app import Options, fail

_SOURCE_ROOT = Path(__file__).resolve().parents[2]


def agent_install(
    opts: Options,
    ssh: Annotated[str, typer.Option("--ssh", metavar="<user@host>",
                                     callback=_values.user_at_host,
                                     help="The customer host, as for ssh.")],
    token: Annotated[str, typer.Option(
        "--token", help="The agent's join token (from 'rmctl agent add'); '-' reads stdin.")],
    port: Annotated[int, typer.Option(help="SSH port.", min=1, max=65535)] = 22,
    identity: Annotated[str, typer.Option(
        "--identity", "-i", help="SSH private key (default: the SSH agent and ~/.ssh keys).",
    )] = "",
    host_key: Annotated[str, typer.Option(
        help="The host's SSH key, 'TYPE BASE64', checked out of band (default: known_hosts).",
    )] = "",
    known_hosts: Annotated[str, typer.Option(help="known_hosts file to trust.")] = "",
    package: Annotated[Path | None, typer.Option(
        help="The rmaint wheel to install (default: built from this installation's source).",
    )] = None,
    prefix: Annotated[str, typer.Option(help="Install under PREFIX/venv.")] = "/opt/rmaint",
    agent_home: Annotated[str, typer.Option("--agent-home", help="The agent's home.")] = (
        "/var/lib/rmaint-agent"),
    listen: Annotated[str, typer.Option(help="host:port of the agent's mTLS server.")] = (
        "0.0.0.0:7445"),
    python: Annotated[str, typer.Option(help="Python 3.11+ on the host.")] = "python3",
    unit_dir: Annotated[str, typer.Option(help="Where the systemd unit goes.")] = (
        "/etc/systemd/system"),
    run_as: Annotated[str, typer.Option(help="The user the agent runs as.")] = "root",
) -> None:
    """Install an agent on a customer host over SSH (SFTP), enroll it and start it."""
    from controller.install import InstallError, Plan, Target, install, pinned_host_key

    user, _, host = ssh.rpartition("@")  # checked as parsed (_values.user_at_host)
    secret = _token_text(token)
    if not secret:
        raise fail("the join token is empty")
    progress = (lambda _: None) if opts.json else (lambda line: out.note(f"  {line}"))
    target = Target(host, user, port, identity, host_key, known_hosts)
    try:
        pinned_host_key(target)  # a bad --host-key is said before the wheel is built
        with tempfile.TemporaryDirectory(prefix="rmaint-wheel-") as scratch:
            wheel = package or _build_wheel(Path(scratch), progress)
            done = install(
                target,
                Plan(wheel, secret, prefix, agent_home, listen, python, unit_dir, run_as),
                progress=progress)
    except InstallError as exc:
        raise fail(str(exc)) from None
    if opts.json:
        out.emit_json({"host": host, "agent_id": done.agent_id, "venv": done.venv,
                       "home": done.home, "unit": done.unit, "started": done.started,
                       "package_sha256": done.package_sha256})
        return
    out.note(f"agent {done.agent_id} installed on {host} in {done.venv}, home {done.home}")
    if not done.started:
        out.note(f"start it on the host with: {done.venv}/bin/rmagent --home {done.home} run")


def _token_text(given: str) -> str:
    return (sys.stdin.readline() if given == "-" else given).strip()


def _build_wheel(into: Path, progress: Callable[[str], None]) -> Path:
    if not (_SOURCE_ROOT / "pyproject.toml").is_file():
        raise fail("this installation has no source to build from: give --package WHEEL")
    progress(f"building a wheel from {_SOURCE_ROOT}")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "--wheel-dir", str(into), str(_SOURCE_ROOT)],
        capture_output=True, text=True, check=False)
    wheels = sorted(into.glob("rmaint-*.whl"))
    if built.returncode != 0 or not wheels:
        raise fail(f"building the wheel failed: {built.stderr.strip()[-500:]}")
    return wheels[0]
