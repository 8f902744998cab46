"""A real SSH server on loopback standing in for a customer's switch (asyncssh).

It runs in its own thread and event loop, so the blocking paramiko client under test
talks to it exactly as to a device. It records every command it was asked to run.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh
import pytest

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


class _Server(asyncssh.SSHServer):
    def __init__(self, client_key: asyncssh.SSHKey,
                 connections: list[asyncssh.SSHServerConnection]) -> None:
        self._client_key = client_key
        self._connections = connections

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._connections.append(conn)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return username == USER and password == PASSWORD

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return username == USER and key.public_data == self._client_key.public_data


@pytest.fixture
def switch(tmp_path: Path) -> Iterator[FakeSwitch]:
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key_path = tmp_path / "device.key"
    client_key.write_private_key(str(client_key_path))
    client_key_path.chmod(0o600)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, object] = {}
    connections: list[asyncssh.SSHServerConnection] = []

    async def handle(process: asyncssh.SSHServerProcess[str]) -> None:
        command = process.command or ""
        fake.commands.append(command)
        if command == "show hang":
            await asyncio.sleep(30)
        out, err, status = _reply(command)
        process.stdout.write(out)
        process.stderr.write(err)
        process.exit(status)

    async def serve() -> None:
        server = await asyncssh.listen(
            "127.0.0.1", 0, server_host_keys=[host_key], process_factory=handle,
            server_factory=lambda: _Server(client_key, connections))
        holder["server"] = server
        holder["port"] = server.sockets[0].getsockname()[1]
        started.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(serve(), loop).result(10)
    started.wait(10)
    public = host_key.export_public_key("openssh").decode().split()
    fake = FakeSwitch(int(holder["port"]), f"{public[0]} {public[1]}",  # type: ignore[call-overload]
                      client_key_path)
    yield fake
    server = holder["server"]
    assert isinstance(server, asyncssh.SSHAcceptor)

    async def stop() -> None:
        server.close()
        await server.wait_closed()
        for conn in connections:
            conn.close()
            await conn.wait_closed()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:  # a command still "running" on the fake device
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()
