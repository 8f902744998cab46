"""A real SSH server on loopback standing in for a customer's switch.

It records every command it was asked to run and answers a few like a switch would.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh
import pytest

from tests.support.ssh_server import SshServer

USER = "monitor"
PASSWORD = secrets.token_urlsafe(16)  # made at test time, like every test secret
SECRET_IN_OUTPUT = secrets.token_hex(12)


@dataclass
class FakeSwitch:
    port: int
    host_key: str  # "ssh-ed25519 AAAA..." as pinned in agent.toml
    client_key_path: Path
    commands: list[str] = field(default_factory=list)


def _reply(command: str) -> tuple[str, str, int]:
    words = command.split(" ")
    if command == "show version":
        return f"Switch OS 9.3\nenable password={SECRET_IN_OUTPUT}\n", "", 0
    if words[:2] == ["show", "interfaces"] and len(words) == 3:
        return f"interface {words[2]} is up\n", "", 0
    if command == "show flood":
        return "x" * 100 + "\n" * 4000, "", 0
    if command == "show fail":
        return "", "% Invalid input\n", 3
    return "", f"% unknown command {command!r}\n", 1


@pytest.fixture
def switch(tmp_path: Path) -> Iterator[FakeSwitch]:
    commands: list[str] = []

    async def handle(process: asyncssh.SSHServerProcess[str]) -> None:
        command = process.command or ""
        commands.append(command)
        if command == "show hang":
            await asyncio.sleep(30)
        out, err, status = _reply(command)
        process.stdout.write(out)
        process.stderr.write(err)
        process.exit(status)

    server = SshServer(handle, tmp_path, USER, PASSWORD).start()
    try:
        yield FakeSwitch(server.port, server.host_key_line, server.client_key_path, commands)
    finally:
        server.stop()
