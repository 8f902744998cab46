"""Agentless devices through the real controller and agent processes and rmctl: a real SSH
server on loopback stands in for a switch. The agent logs in with credentials that never
leave it, against the pinned host key; output is redacted; other commands are refused."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncssh
import pytest

from tests.integration.e2e.conftest import E2E, one_error_line
from tests.support.ssh_server import SshServer

USER = "monitor"
PASSWORD = secrets.token_urlsafe(16)
PLANTED = secrets.token_hex(12)


@pytest.fixture
def switch(tmp_path: Path) -> Iterator[tuple[SshServer, list[str]]]:
    commands: list[str] = []

    async def handle(process: asyncssh.SSHServerProcess[str]) -> None:
        commands.append(process.command or "")
        if process.command == "show version":
            process.stdout.write(f"Switch OS 9.3\nenable password={PLANTED}\n")
        process.exit(0)

    server = SshServer(handle, tmp_path, USER, PASSWORD).start()
    try:
        yield server, commands
    finally:
        server.stop()


def _devices(port: int, host_key: str) -> str:
    return f"""[[devices]]
name = "core-switch"
host = "127.0.0.1"
port = {port}
user = "{USER}"
password = "{PASSWORD}"
host_key = "{host_key}"
commands = ["show version", "show interfaces {{word}}"]
timeout = 10
"""


def test_exec_pinned_redacted_allowlisted(deployment_factory: Callable[..., E2E],
                                          switch: tuple[SshServer, list[str]]) -> None:
    server, commands = switch
    e2e = deployment_factory()
    d = e2e.d
    wrong_key = asyncssh.generate_private_key("ssh-ed25519")
    d.enable_changes(_devices(server.port, server.host_key_line) + "\n" + _devices(
        server.port, " ".join(wrong_key.export_public_key("openssh").decode().split()[:2]))
        .replace("core-switch", "impostor"))
    e2e.grant_session(scopes=("device.exec",))

    listed = d.json(d.engineer("device", "list", "--json"))
    assert [x["name"] for x in listed["devices"]] == ["core-switch", "impostor"]
    assert PASSWORD not in str(listed) and "127.0.0.1" not in str(listed)

    ran = d.json(d.engineer("device", "exec", "core-switch", "show", "version", "--json"))
    assert ran["exit_status"] == 0 and "Switch OS 9.3" in ran["stdout"]
    assert PLANTED not in ran["stdout"] and ran["redactions"] >= 1
    assert commands == ["show version"]

    refused = d.engineer("device", "exec", "core-switch", "reload", check=False)
    assert "not allowlisted" in one_error_line(refused)
    injected = d.engineer("device", "exec", "core-switch", "show", "interfaces", "Gi0/1;reload",
                          check=False)
    assert injected.returncode != 0
    assert commands == ["show version"]  # neither reached the device

    impostor = d.engineer("device", "exec", "impostor", "show", "version", check=False)
    assert impostor.returncode != 0  # the server's key is not the one pinned for it
    assert commands == ["show version"]

    for path in d.controller_home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert PLANTED.encode() not in data and PASSWORD.encode() not in data, path
