"""One login through the gateway: authorize, open the agent's shell, pump bytes, record.

Refusals all look the same to the SSH client ("permission denied" on stderr, exit
status 1); the reason goes to the controller's log (event ``gateway.refused``). The
gateway itself checks that the client's key is an enrolled engineer's and, once the
agent accepted the ticket, that the session it names is open, the engineer's and on that
agent. The agent checks the rest (see :mod:`agent.shell.service`).

The ticket comes from the username (``<agent-id>+<ticket>``) or, when the username is the
plain agent id, from the gateway certificate the client authenticated with
(:mod:`controller.gateway.userca`); either way it is redeemed on the agent for the key
the client proved (a certificate's subject key).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from dataclasses import dataclass

import asyncssh
from cryptography.hazmat.primitives.serialization import load_der_public_key

from controller.gateway.asciicast import MAX_RECORDING, Header, Recorder
from controller.gateway.link import Link, LinkRefused, ShellLink
from controller.gateway.recording import Finished, store_recording
from controller.gateway.userca import CertificateRefused
from controller.logs import log_event
from controller.services._common import Deps
from controller.store import directory, sessions
from controller.store import locks as store_locks
from permissions import key_id
from permissions.locks import Subject
from pki.tls import TlsFiles
from rmaint.v1 import agent_pb2 as pb

REFUSED = b"permission denied\r\n"
RECORDING_FULL = (f"\r\n[the session's recording reached its limit of {MAX_RECORDING // 2**20} "
                  f"MiB: the shell is ended]\r\n").encode()
_USER = re.compile(r"^(?P<agent>[A-Za-z0-9][A-Za-z0-9._-]{0,62})\+(?P<ticket>[0-9a-f]{32})$")
_AGENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
READ_SIZE = 65536


class Refusal(Exception):
    """Why a login is refused (for the log only)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Login:
    """What the SSH layer learned: the username and the authenticated public key (a
    certificate's subject key); with a gateway certificate, the ticket it carries, or why
    that certificate does not log in (then the reason is this login's)."""

    username: str
    key: asyncssh.SSHKey
    peer: str
    cert_ticket: str | None = None
    cert_problem: CertificateRefused | None = None


def ssh_key_id(key: asyncssh.SSHKey) -> str:
    """The rmaint key id of an SSH public key (as enrollment computes it)."""
    public = load_der_public_key(key.export_public_key("pkcs8-der"))
    return key_id(public)  # type: ignore[arg-type]  # an engineer key is EC, others fail below


async def _engineer_of(deps: Deps, kid: str) -> str | None:
    """The enrolled engineer whose key has the id ``kid``, if any."""
    principals = await deps.store.read(directory.list_principals)
    found = [p.name for p in principals if p.role == "engineer" and p.key_fingerprint == kid]
    return found[0] if found else None


async def is_engineer_key(deps: Deps, key: asyncssh.SSHKey) -> bool:
    """Whether ``key`` is an enrolled engineer's."""
    try:
        kid = ssh_key_id(key)
    except (ValueError, TypeError, AttributeError):
        return False
    return await _engineer_of(deps, kid) is not None


class GatewaySession:
    def __init__(self, deps: Deps, files: TlsFiles) -> None:
        self._deps = deps
        self._files = files

    async def run(self, process: asyncssh.SSHServerProcess[bytes], login: Login) -> None:
        try:
            link, opened, agent_id = await self._authorize(process, login)
        except Refusal as exc:
            log_event("gateway.refused", logging.WARNING, reason=exc.reason, detail=exc.detail,
                      username=login.username[:80], peer=login.peer)
            process.stderr.write(REFUSED)
            process.exit(1)
            return
        log_event("gateway.shell.started", session_id=opened.session_id,
                  shell_id=opened.shell_id, agent_id=agent_id, engineer=opened.engineer)
        await self._pump(process, link, opened, agent_id)

    async def _authorize(self, process: asyncssh.SSHServerProcess[bytes],
                         login: Login) -> tuple[Link, pb.ShellOpened, str]:
        try:
            kid = ssh_key_id(login.key)
        except (ValueError, TypeError, AttributeError) as exc:
            raise Refusal("key-unusable", str(exc)) from exc
        engineer = await self._engineer(kid)
        agent_id, ticket = _target(login)
        await self._refuse_locked(Subject(agent_id=agent_id, engineer_key_id=kid))
        agent = await self._deps.store.read(directory.get_agent, agent_id)
        dialin = self._deps.relay.dialin
        dialed_out = dialin is not None and agent_id in dialin.connected()
        if agent is None or not (agent.address or dialed_out):
            raise Refusal("agent-unreachable", agent_id)
        cols, rows, *_ = process.term_size
        request = pb.ShellOpen(ticket=ticket, engineer_key_id=kid,
                               term=process.term_type or "",
                               window=pb.ShellWindow(cols=cols or 80, rows=rows or 24))
        link: Link
        try:
            if dialed_out:  # as operations go: down the agent's own connection when it holds one
                link, opened = await self._deps.reverse_shells.claim(agent_id, request)
            else:
                link, opened = await ShellLink.open(self._files, self._deps.trust_domain,
                                                    agent_id, agent.address, request)
        except LinkRefused as exc:
            raise Refusal("agent-refused", str(exc)) from exc
        try:
            await self._check_session(opened, engineer, agent_id)
            await self._refuse_locked(Subject(agent_id, opened.grant_id, opened.case_id, kid))
        except Refusal:
            await link.close()
            raise
        return link, opened, agent_id

    async def _engineer(self, kid: str) -> str:
        found = await _engineer_of(self._deps, kid)
        if found is None:
            raise Refusal("key-not-enrolled", kid)
        return found

    async def _refuse_locked(self, subject: Subject) -> None:
        """Refusal if a lock in force covers the login's agent, engineer key, grant or case
        (checked before dialling, and again once the agent named the grant and case)."""
        lock = await self._deps.store.read(store_locks.lock_on, subject, self._deps.clock())
        if lock is not None:
            raise Refusal("locked", f"{lock.target} ({lock.lock_id}: {lock.reason})")

    async def _check_session(self, opened: pb.ShellOpened, engineer: str, agent_id: str) -> None:
        session = await self._deps.store.read(sessions.get_session, opened.session_id)
        if session is None or not session.is_open:
            raise Refusal("session-not-open", opened.session_id)
        if session.engineer != engineer or session.agent_id != agent_id \
                or opened.engineer != engineer:
            raise Refusal("session-mismatch", f"{opened.session_id} is {session.engineer}'s "
                          f"on {session.agent_id}")

    async def _pump(self, process: asyncssh.SSHServerProcess[bytes], link: Link,
                    opened: pb.ShellOpened, agent_id: str) -> None:
        cols, rows, *_ = process.term_size
        started_wall, started = self._deps.clock(), time.monotonic()
        recorder = Recorder(Header(cols or 80, rows or 24, int(started_wall),
                                   process.term_type or ""), started)
        inbound = asyncio.create_task(_forward_input(process, link, recorder))
        digest = hashlib.sha256()
        ended = pb.ShellExit(status=255, reason="disconnected")
        outbound = asyncio.create_task(_forward_output(process, link, recorder, digest))
        # The engineer's connection may drop without a word (a killed client): then the
        # agent's shell is ended at once, not left running until its idle timeout.
        dropped = asyncio.create_task(process.channel.wait_closed())
        try:
            await asyncio.wait({outbound, dropped}, return_when=asyncio.FIRST_COMPLETED)
            if outbound.done():
                ended = outbound.result()
        finally:
            for task in (inbound, outbound, dropped):
                task.cancel()
            await link.close()
        finished = Finished(opened.session_id, opened.seq, opened.engineer, agent_id,
                            opened.shell_id, started_wall, (time.monotonic() - started) * 1000,
                            ended.status, ended.reason, digest.hexdigest(), ended.output_sha256)
        await self._save(recorder, finished)  # stored before the client learns the end
        process.exit(ended.status)

    async def _save(self, recorder: Recorder, finished: Finished) -> None:
        try:
            digest = await self._deps.store.write(store_recording, recorder.dumps(), finished,
                                                  self._deps.clock())
        except Exception as exc:  # the shell is over; the loss must be loud in the log
            log_event("gateway.recording.lost", logging.ERROR, session_id=finished.session_id,
                      shell_id=finished.shell_id, error=repr(exc))
            return
        log_event("gateway.shell.ended", session_id=finished.session_id,
                  shell_id=finished.shell_id, reason=finished.reason, status=finished.status,
                  recording_sha256=digest,
                  output_matches=finished.output_sha256 == finished.agent_output_sha256)


def _target(login: Login) -> tuple[str, str]:
    """The agent id and the ticket of a login (Refusal if it names none)."""
    if login.cert_ticket is not None:  # the SSH layer checked the principal is the username
        if not _AGENT.match(login.username):
            raise Refusal("bad-username", "a certificate login names the agent id alone")
        return login.username, login.cert_ticket
    match = _USER.match(login.username)
    if match is not None:
        return match["agent"], match["ticket"]
    if login.cert_problem is not None:
        raise Refusal(login.cert_problem.reason, login.cert_problem.detail)
    raise Refusal("bad-username", "expected <agent-id>+<ticket>, or a gateway certificate")


async def _forward_input(process: asyncssh.SSHServerProcess[bytes], link: Link,
                         recorder: Recorder) -> None:
    size = process.term_size[:2]
    while True:
        try:
            data = await process.stdin.read(READ_SIZE)
        except asyncssh.TerminalSizeChanged as change:
            # The same size again changes nothing; past the recording's limit, nothing more
            # is resized (the output that follows ends the shell).
            if (change.width, change.height) != size and \
                    recorder.resize(change.width, change.height, time.monotonic()):
                size = (change.width, change.height)
                await link.send(pb.ShellClientMessage(
                    resize=pb.ShellWindow(cols=change.width, rows=change.height)))
            continue
        except (asyncssh.BreakReceived, asyncssh.SignalReceived):
            continue
        if not data:
            await link.send(pb.ShellClientMessage(eof=True))
            return
        await link.send(pb.ShellClientMessage(stdin=data))


async def _forward_output(process: asyncssh.SSHServerProcess[bytes], link: Link,
                          recorder: Recorder, digest: hashlib._Hash) -> pb.ShellExit:
    while (message := await link.receive()) is not None:
        kind = message.WhichOneof("kind")
        if kind == "stdout":
            if not recorder.output(message.stdout, time.monotonic()):
                # Nothing reaches the engineer unrecorded: the shell ends here.
                process.stdout.write(RECORDING_FULL)
                return pb.ShellExit(status=255, reason="recording-limit")
            digest.update(message.stdout)
            process.stdout.write(message.stdout)
            await process.stdout.drain()
        elif kind == "exit":
            return message.exit
    return pb.ShellExit(status=255, reason="disconnected")
