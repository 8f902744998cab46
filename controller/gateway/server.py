"""The SSH gateway: an asyncssh server on the controller for stock OpenSSH clients.

Clients authenticate by public key (any key whose signature verifies; whether it may log
in is decided per login, so every refusal looks the same) and ask for an interactive
shell with a PTY; the username is ``<agent-id>+<ticket>``, or the plain agent id with a
certificate of the gateway's user CA that carries the ticket (see ``rmctl ssh-cert``).
Each login is a :class:`~controller.gateway.session.GatewaySession`.

Certificates are checked here, not by asyncssh: asyncssh refuses an expired certificate
or one for another principal inside authentication, silently, and the client then reports
its own "Permission denied (publickey)". Instead, :meth:`_Server.connection_made` wraps
the connection's key check (the one call its public-key step makes): a certificate is
handed on as its subject key, so asyncssh verifies the client's signature with that key,
and the result of :func:`~controller.gateway.userca.check` on the controller's clock (the
ticket, or why not) is kept for the login, which is then refused like any other, with
that reason in the log. A certificate offered with a ``+ticket`` username is declined: that
login uses its plain key.

OpenSSH offers an identity's plain key before the ``<key>-cert.pub`` it found beside it
(a ``CertificateFile`` goes first), so an enrolled engineer's plain key is declined for a
bare agent id: its ticket can only be in the certificate that follows. Any other key is
accepted there and refused per login, as ever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncssh

from controller.config import ControllerConfig
from controller.gateway.hostkey import load_or_create
from controller.gateway.session import _AGENT, _USER, GatewaySession, Login, is_engineer_key
from controller.gateway.userca import CertificateRefused, UserCA, check
from controller.gateway.usercert import CertificateInvalid, is_certificate, parse
from controller.logs import log_event
from controller.services._common import Deps
from pki.tls import TlsFiles

LOGIN_TIMEOUT = 30.0
SESSION_WAIT = 10.0  # after logging in: a connection that opens no session by then is closed
MAX_CONNECTIONS = 256  # open at once: each holds a file descriptor
MAX_PER_PEER = 16  # from one address, so one peer cannot take every other's room


class _Connections:
    """Open connections by peer address; one per gateway."""

    def __init__(self) -> None:
        self.by_peer: dict[str, int] = {}

    def admit(self, host: str) -> bool:
        if sum(self.by_peer.values()) >= MAX_CONNECTIONS \
                or self.by_peer.get(host, 0) >= MAX_PER_PEER:
            return False
        self.by_peer[host] = self.by_peer.get(host, 0) + 1
        return True

    def release(self, host: str) -> None:
        left = self.by_peer.get(host, 0) - 1
        if left > 0:
            self.by_peer[host] = left
        else:
            self.by_peer.pop(host, None)


_KeyCheck = Callable[[str, bytes, bytes, bytes], Awaitable[bool]]


class _Server(asyncssh.SSHServer):
    """Per connection: remembers the key the client authenticated with, and the ticket of
    its gateway certificate or why that certificate does not log in."""

    def __init__(self, ca: UserCA, clock: Callable[[], float],
                 enrolled: Callable[[asyncssh.SSHKey], Awaitable[bool]],
                 connections: _Connections) -> None:
        self.key: asyncssh.SSHKey | None = None
        self.peer = ""
        self.cert_ticket: str | None = None
        self.cert_problem: CertificateRefused | None = None
        self.sessions = 0
        self._ca = ca
        self._clock = clock
        self._enrolled = enrolled
        self._certifying = False
        self._connections = connections
        self._host: str | None = None  # set once admitted
        self._conn: asyncssh.SSHServerConnection | None = None
        self._idle: asyncio.TimerHandle | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        peer = conn.get_extra_info("peername") or ("", 0)
        self.peer = f"{peer[0]}:{peer[1]}"
        self._conn = conn
        if not self._connections.admit(str(peer[0])):
            log_event("gateway.refused", logging.WARNING, peer=self.peer,
                      reason="too-many-connections")
            conn.abort()
            return
        self._host = str(peer[0])
        conn.set_extra_info(gateway=self)
        setattr(conn, "validate_public_key",  # noqa: B010  # see the module docstring
                self._with_certificates(conn.validate_public_key))

    def _with_certificates(self, check_key: _KeyCheck) -> _KeyCheck:
        async def validate_public_key(username: str, key_data: bytes, msg: bytes,
                                      signature: bytes) -> bool:
            ticket, problem = None, None
            if is_certificate(key_data):
                if _USER.match(username):
                    return False  # a ticket login: the client goes on to its plain key
                try:
                    cert = parse(key_data)
                except CertificateInvalid:
                    return False  # no subject key to prove: as if never offered
                try:
                    ticket = check(self._ca.public, cert, username, self._clock())
                except CertificateRefused as exc:
                    problem = exc
                key_data = cert.subject
            self._certifying = ticket is not None or problem is not None
            try:
                accepted = await check_key(username, key_data, msg, signature)
            finally:
                self._certifying = False
            if accepted and msg:  # signed and verified: this is the login's key
                self.cert_ticket, self.cert_problem = ticket, problem
            return accepted
        return validate_public_key

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle is not None:
            self._idle.cancel()
        if self._host is not None:
            self._connections.release(self._host)
            self._host = None

    def auth_completed(self) -> None:
        self._idle = asyncio.get_running_loop().call_later(SESSION_WAIT, self._close_if_idle)

    def _close_if_idle(self) -> None:
        if self.sessions == 0 and self._conn is not None:
            log_event("gateway.refused", peer=self.peer, reason="no-session")
            self._conn.close()

    def begin_auth(self, username: str) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        # asyncssh verifies the client's signature with this key after we accept it.
        if not self._certifying and _AGENT.match(username) and await self._enrolled(key):
            return False  # its ticket can only be in a certificate, offered after this key
        self.key = key
        return True


@dataclass
class Gateway:
    """A listening gateway; ``port`` is the bound port."""

    server: asyncssh.SSHAcceptor
    port: int
    deps: Deps | None = None

    async def stop(self) -> None:
        if self.deps is not None:
            self.deps.shell_ca.ca = None
        self.server.close()
        await self.server.wait_closed()


async def start_gateway(config: ControllerConfig, deps: Deps) -> Gateway:
    """Listen on ``config.gateway_listen`` with the home's host key; certificates of the
    home's user CA log in, and the engineer service issues them while this runs."""
    assert config.gateway_listen is not None
    files = config.files
    ca = UserCA.load_or_create(config.home)
    session = GatewaySession(deps, TlsFiles(files.key, files.cert, files.ca_cert))
    connections = _Connections()

    async def handle(process: asyncssh.SSHServerProcess[bytes]) -> None:
        server: _Server = process.get_extra_info("gateway")
        assert server.key is not None, "public key authentication succeeded"
        server.sessions += 1
        if process.command is not None or process.subsystem is not None:
            # Only an interactive login is recorded and watched as a shell: a command
            # would run unseen as one, so it is refused before the ticket is used.
            log_event("gateway.refused", peer=server.peer, reason="not-interactive",
                      command=(process.command or process.subsystem or "")[:200])
            process.stderr.write(b"rmaint gateway: interactive login only (no command)\r\n")
            process.exit(1)
            return
        login = Login(process.get_extra_info("username") or "", server.key, server.peer,
                      server.cert_ticket, server.cert_problem)
        try:
            await session.run(process, login)
        finally:
            process.close()

    acceptor = await asyncssh.create_server(
        lambda: _Server(ca, deps.clock, lambda key: is_engineer_key(deps, key), connections),
        config.gateway_listen.host, config.gateway_listen.port,
        server_host_keys=[load_or_create(config.home)], process_factory=handle,
        encoding=None, line_editor=False, login_timeout=LOGIN_TIMEOUT,
        allow_scp=False, agent_forwarding=False, x11_forwarding=False,
        keepalive_interval=30.0)
    port = acceptor.sockets[0].getsockname()[1]
    deps.shell_ca.ca = ca
    log_event("gateway.started", address=f"{config.gateway_listen.host}:{port}")
    return Gateway(acceptor, port, deps)
