"""The SSH gateway: an asyncssh server on the controller for stock OpenSSH clients.

Clients authenticate by public key (any key whose signature verifies; whether it may log
in is decided per login, so every refusal looks the same) and ask for an interactive
shell with a PTY; the username is ``<agent-id>+<ticket>`` (see ``rmctl ssh``). Each
login is a :class:`~controller.gateway.session.GatewaySession`.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncssh

from controller.config import ControllerConfig
from controller.gateway.hostkey import load_or_create
from controller.gateway.session import GatewaySession, Login
from controller.logs import log_event
from controller.services._common import Deps
from pki.tls import TlsFiles

LOGIN_TIMEOUT = 30.0


class _Server(asyncssh.SSHServer):
    """Per connection: remembers the key the client authenticated with."""

    def __init__(self) -> None:
        self.key: asyncssh.SSHKey | None = None
        self.peer = ""

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        peer = conn.get_extra_info("peername") or ("", 0)
        self.peer = f"{peer[0]}:{peer[1]}"
        conn.set_extra_info(gateway=self)

    def begin_auth(self, username: str) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        # asyncssh verifies the client's signature with this key after we accept it.
        self.key = key
        return True


@dataclass
class Gateway:
    """A listening gateway; ``port`` is the bound port."""

    server: asyncssh.SSHAcceptor
    port: int

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()


async def start_gateway(config: ControllerConfig, deps: Deps) -> Gateway:
    """Listen on ``config.gateway_listen`` with the home's host key."""
    assert config.gateway_listen is not None
    files = config.files
    session = GatewaySession(deps, TlsFiles(files.key, files.cert, files.ca_cert))

    async def handle(process: asyncssh.SSHServerProcess[bytes]) -> None:
        server: _Server = process.get_extra_info("gateway")
        assert server.key is not None, "public key authentication succeeded"
        login = Login(process.get_extra_info("username") or "", server.key, server.peer)
        try:
            await session.run(process, login)
        finally:
            process.close()

    acceptor = await asyncssh.create_server(
        _Server, config.gateway_listen.host, config.gateway_listen.port,
        server_host_keys=[load_or_create(config.home)], process_factory=handle,
        encoding=None, line_editor=False, login_timeout=LOGIN_TIMEOUT,
        allow_scp=False, agent_forwarding=False, x11_forwarding=False,
        keepalive_interval=30.0)
    port = acceptor.sockets[0].getsockname()[1]
    log_event("gateway.started", address=f"{config.gateway_listen.host}:{port}")
    return Gateway(acceptor, port)
