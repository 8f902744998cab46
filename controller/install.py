"""Installing an agent on a customer host over SSH (paramiko): copy, install, enroll.

The host's SSH key must be known before anything is sent: pinned with ``host_key`` or
listed in a known_hosts file; an unknown or changed key is refused. The package is copied
over SFTP into a fresh private directory, installed into a virtual environment, and the
agent is enrolled with the join token, which is passed on standard input so it never
shows in a process list on either host. Then a systemd unit is written and, where systemd
runs, enabled and started.

Every remote command is built from words quoted with :func:`shlex.quote`; nothing from the
caller reaches a remote shell unquoted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import posixpath
import shlex
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

UNIT_NAME = "rmagent.service"
COMMAND_TIMEOUT = 600.0  # pip may download the dependencies
OUTPUT_TAIL = 2000


class InstallError(Exception):
    """A step failed; the message names the step and carries the tail of its output."""


@dataclass(frozen=True)
class Target:
    host: str
    user: str
    port: int = 22
    key_file: str = ""  # the installer's SSH key; else the SSH agent and default keys
    host_key: str = ""  # "ssh-ed25519 AAAA..." pins the host; else known_hosts is used
    known_hosts: str = ""


@dataclass(frozen=True)
class Plan:
    package: Path  # a wheel of rmaint
    token: str
    prefix: str = "/opt/rmaint"  # the virtual environment goes to <prefix>/venv
    home: str = "/var/lib/rmaint-agent"
    listen: str = "0.0.0.0:7445"
    python: str = "python3"
    unit_dir: str = "/etc/systemd/system"
    run_as: str = "root"
    extra_enroll_args: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Installed:
    venv: str
    home: str
    unit: str
    agent_id: str
    started: bool  # systemd enabled and started it
    package_sha256: str


Progress = Callable[[str], None]


def fingerprint(key: paramiko.PKey) -> str:
    """The key's OpenSSH SHA256 fingerprint, as ``ssh-keygen -l`` prints it."""
    digest = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


class _Pinned(paramiko.MissingHostKeyPolicy):
    """Refuses every key that is not already known, naming its fingerprint."""

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        raise InstallError(
            f"the SSH host key of {hostname} is not known ({key.get_name()} "
            f"{fingerprint(key)}); check it out of band, then pass it with --host-key or "
            "add it to known_hosts")


def pinned_host_key(target: Target) -> paramiko.PKey | None:
    """The host key given with ``--host-key``, if any; InstallError unless it parses
    (checked before anything is built or sent)."""
    if not target.host_key:
        return None
    key_type, _, data = target.host_key.partition(" ")
    try:
        return paramiko.PKey.from_type_string(key_type, base64.b64decode(data.split()[0]))
    except (ValueError, IndexError, paramiko.SSHException) as exc:
        raise InstallError("--host-key must be 'TYPE BASE64', e.g. from "
                           "'ssh-keyscan' checked out of band") from exc


def connect(target: Target) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    pinned = pinned_host_key(target)
    if pinned is not None:
        name = target.host if target.port == 22 else f"[{target.host}]:{target.port}"
        client.get_host_keys().add(name, pinned.get_name(), pinned)
    else:
        known = Path(target.known_hosts or "~/.ssh/known_hosts").expanduser()
        if known.exists():
            client.load_host_keys(str(known))
    client.set_missing_host_key_policy(_Pinned())
    try:
        client.connect(target.host, target.port, username=target.user,
                       key_filename=target.key_file or None, timeout=20, banner_timeout=20,
                       auth_timeout=20, look_for_keys=not target.key_file,
                       allow_agent=not target.key_file)
    except paramiko.BadHostKeyException as exc:
        raise InstallError(f"the SSH host key of {target.host} differs from the known one "
                           f"({fingerprint(exc.key)}); nothing was sent") from exc
    except paramiko.AuthenticationException as exc:
        raise InstallError(f"SSH authentication as {target.user}@{target.host} failed") from exc
    except (OSError, paramiko.SSHException) as exc:
        raise InstallError(f"cannot reach {target.host}:{target.port} over SSH: {exc}") from exc
    return client


def install(target: Target, plan: Plan, progress: Progress = lambda _: None) -> Installed:
    """Copy, install, enroll and start the agent on ``target``; raise InstallError."""
    package_sha = hashlib.sha256(plan.package.read_bytes()).hexdigest()
    client = connect(target)
    try:
        return _install(client, plan, package_sha, progress)
    finally:
        client.close()


def _install(client: paramiko.SSHClient, plan: Plan, package_sha: str,
             progress: Progress) -> Installed:
    staging = _run(client, "make a private staging directory",
                   ["mktemp", "-d", "-t", "rmaint-install.XXXXXXXX"]).strip()
    remote_package = posixpath.join(staging, plan.package.name)
    progress(f"copying {plan.package.name} to {staging}")
    _upload(client, plan.package, remote_package, package_sha)
    venv = posixpath.join(plan.prefix, "venv")
    progress(f"creating the virtual environment {venv}")
    _run(client, "create the virtual environment", [plan.python, "-m", "venv", venv])
    progress("installing the agent and its dependencies")
    _run(client, "install the package", [posixpath.join(venv, "bin", "pip"), "install",
                                         "--quiet", "--disable-pip-version-check",
                                         remote_package])
    rmagent = posixpath.join(venv, "bin", "rmagent")
    progress("enrolling with the join token")
    enrolled = _run(client, "enroll the agent",
                    [rmagent, "--home", plan.home, "--json", "enroll", "--token", "-",
                     "--listen", plan.listen, *plan.extra_enroll_args],
                    stdin=plan.token + "\n")
    agent_id = _agent_id(enrolled)
    _run(client, "remove the staging directory", ["rm", "-rf", "--", staging])
    unit = posixpath.join(plan.unit_dir, UNIT_NAME)
    progress(f"writing the systemd unit {unit}")
    _write(client, unit, unit_file(rmagent, plan.home, plan.run_as).encode(), 0o644)
    started = _start_unit(client, progress)
    return Installed(venv, plan.home, unit, agent_id, started, package_sha)


def unit_file(rmagent: str, home: str, user: str) -> str:
    return "\n".join((
        "[Unit]",
        "Description=rmaint agent",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        f"ExecStart={_systemd_quote(rmagent)} --home {_systemd_quote(home)} run",
        f"User={user}",
        "Restart=on-failure",
        "RestartSec=5",
        "UMask=0077",
        # Each connection holds a descriptor: the default 1024 is soon taken by a flood.
        "LimitNOFILE=65536",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ))


def _systemd_quote(word: str) -> str:
    if any(c in word for c in "\n\"\\"):
        raise InstallError(f"unsupported character in {word!r}")
    return f'"{word}"' if " " in word else word


def _start_unit(client: paramiko.SSHClient, progress: Progress) -> bool:
    if _status(client, ["test", "-d", "/run/systemd/system"]) != 0:
        progress("systemd is not running on this host: the unit is written but not started")
        return False
    progress("enabling and starting the agent")
    _run(client, "reload systemd", ["systemctl", "daemon-reload"])
    _run(client, "enable and start the unit", ["systemctl", "enable", "--now", UNIT_NAME])
    return True


def _agent_id(enroll_output: str) -> str:
    try:
        return str(json.loads(enroll_output)["agent_id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InstallError("the enrollment printed no agent id") from exc


def _upload(client: paramiko.SSHClient, local: Path, remote: str, sha256: str) -> None:
    with client.open_sftp() as sftp:
        sftp.put(str(local), remote)
        sftp.chmod(remote, 0o600)
    # Checked on the host, so a corrupted copy is never installed.
    listed = _run(client, "check the copied package", ["sha256sum", "--", remote])
    if listed.split()[:1] != [sha256]:
        raise InstallError("the copied package's SHA-256 differs from the local one")


def _write(client: paramiko.SSHClient, path: str, data: bytes, mode: int) -> None:
    temporary = path + ".rmaint-tmp"
    try:
        with client.open_sftp() as sftp:
            with sftp.open(temporary, "wb") as handle:
                handle.write(data)
            sftp.chmod(temporary, mode)
            if not stat.S_ISREG(sftp.stat(temporary).st_mode or 0):
                raise InstallError(f"{temporary} is not a regular file")
            sftp.posix_rename(temporary, path)
    except OSError as exc:
        raise InstallError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _status(client: paramiko.SSHClient, words: list[str]) -> int:
    _, stdout, _ = client.exec_command(shlex.join(words), timeout=COMMAND_TIMEOUT)
    stdout.read()
    return stdout.channel.recv_exit_status()


def _run(client: paramiko.SSHClient, step: str, words: list[str], stdin: str = "") -> str:
    """Run ``words`` on the host; its stdout, or InstallError naming ``step``."""
    channel_in, stdout, stderr = client.exec_command(shlex.join(words), timeout=COMMAND_TIMEOUT)
    if stdin:
        channel_in.write(stdin)
    channel_in.channel.shutdown_write()
    out = stdout.read().decode("utf-8", "replace")
    err = stderr.read().decode("utf-8", "replace")
    status = stdout.channel.recv_exit_status()
    if status != 0:
        tail = (err or out).strip()[-OUTPUT_TAIL:]
        raise InstallError(f"could not {step} (exit status {status}): {tail}")
    return out
