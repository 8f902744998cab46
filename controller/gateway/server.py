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


_KeyCheck = Callable[[str, bytes, bytes, bytes], Awaitable[bool]]


class _Server(asyncssh.SSHServer):
    """Per connection: remembers the key the client authenticated with, and the ticket of
    its gateway certificate or why that certificate does not log in."""

    def __init__(self, ca: UserCA, clock: Callable[[], float],
                 enrolled: Callable[[asyncssh.SSHKey], Awaitable[bool]]) -> None:
        self.key: asyncssh.SSHKey | None = None
        self.peer = ""
        self.cert_ticket: str | None = None
        self.cert_problem: CertificateRefused | None = None
        self._ca = ca
        self._clock = clock
        self._enrolled = enrolled
        self._certifying = False

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        peer = conn.get_extra_info("peername") or ("", 0)
        self.peer = f"{peer[0]}:{peer[1]}"
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

    async def handle(process: asyncssh.SSHServerProcess[bytes]) -> None:
        server: _Server = process.get_extra_info("gateway")
        assert server.key is not None, "public key authentication succeeded"
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
        lambda: _Server(ca, deps.clock, lambda key: is_engineer_key(deps, key)),
        config.gateway_listen.host, config.gateway_listen.port,
        server_host_keys=[load_or_create(config.home)], process_factory=handle,
        encoding=None, line_editor=False, login_timeout=LOGIN_TIMEOUT,
        allow_scp=False, agent_forwarding=False, x11_forwarding=False,
        keepalive_interval=30.0)
    port = acceptor.sockets[0].getsockname()[1]
    deps.shell_ca.ca = ca
    log_event("gateway.started", address=f"{config.gateway_listen.host}:{port}")
    return Gateway(acceptor, port, deps)
