"""A real SSH server (asyncssh) on loopback, in its own thread and event loop.

Blocking clients under test (paramiko, the OpenSSH client) talk to it as to any host.
It authenticates one user by password or by one public key, hands each command to
``handle`` and, with ``sftp=True``, serves SFTP on the local file system.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

Handler = Callable[[asyncssh.SSHServerProcess[str]], Awaitable[None]]


class _Auth(asyncssh.SSHServer):
    def __init__(self, server: SshServer) -> None:
        self._server = server

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._server.connections.append(conn)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return bool(self._server.password)

    def validate_password(self, username: str, password: str) -> bool:
        return username == self._server.user and password == self._server.password

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return username == self._server.user \
            and key.public_data == self._server.client_key.public_data


@dataclass
class SshServer:
    """Call :meth:`start`, then use ``port``, ``host_key_line`` and ``client_key_path``."""

    handle: Handler
    key_dir: Path
    user: str
    password: str = ""
    sftp: bool = False
    host_key: asyncssh.SSHKey = field(
        default_factory=lambda: asyncssh.generate_private_key("ssh-ed25519"))
    client_key: asyncssh.SSHKey = field(
        default_factory=lambda: asyncssh.generate_private_key("ssh-ed25519"))
    connections: list[asyncssh.SSHServerConnection] = field(default_factory=list)
    port: int = 0
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _thread: threading.Thread | None = None
    _acceptor: asyncssh.SSHAcceptor | None = None

    @property
    def host_key_line(self) -> str:
        """``TYPE BASE64`` of the host key, as pinned in configuration."""
        return " ".join(self.host_key.export_public_key("openssh").decode().split()[:2])

    @property
    def client_key_path(self) -> Path:
        return self.key_dir / "client.key"

    def start(self) -> SshServer:
        self.client_key.write_private_key(str(self.client_key_path))
        self.client_key_path.chmod(0o600)
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        return self

    async def _listen(self) -> None:
        self._acceptor = await asyncssh.listen(
            "127.0.0.1", 0, server_host_keys=[self.host_key], process_factory=self.handle,
            server_factory=lambda: _Auth(self), sftp_factory=self.sftp or None)
        self.port = self._acceptor.sockets[0].getsockname()[1]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop.close()

    async def _close(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()
        for conn in self.connections:
            conn.close()
            await conn.wait_closed()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:  # commands still running
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
