"""``AgentService.Shell``: redeem a ticket, record the login, run the PTY shell, record its end.

Redeeming checks everything again on the agent's clock: the ticket (issued, unused, now
consumed, unexpired, for the SSH client's key), the customer's ``[shell]`` table, and the
grant (stored, not revoked, in its window, with scope ``shell``). The login is written to
the agent's operation log before the shell starts (refused if it cannot be), and its end
(reason, exit status, SHA-256 of all output) after. Every refusal is a TicketRefused:
"permission denied" outward, the reason in the log.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from agent.catalogue import OperationSpec
from agent.dispatcher import Dispatcher
from agent.errors import BadInput, OperationFailed
from agent.log import Attempt, OperationLog, Result
from agent.shell.errors import TicketRefused
from agent.shell.live import LiveShell, LiveShells
from agent.shell.ops import shell_specs
from agent.shell.policy import ShellPolicy
from agent.shell.pty import Account, PtyShell
from agent.shell.tickets import Binding, TicketStore
from agent.sqlite import to_the_end
from agent.state import StateStore
from permissions import Grant, PermissionsError
from rmaint.v1 import agent_pb2 as pb

LOGIN = "shell.login"
_TERM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
_log = logging.getLogger("agent.shell")


@dataclass(frozen=True)
class _Opened:
    live: LiveShell
    pty: PtyShell
    deadline: float
    deadline_reason: str
    log_index: int


class ShellService:
    """The shells of one agent: its ticket store, its live shells, the Shell stream.

    :meth:`attach` binds it to the dispatcher: revocations seen there end shells here.
    """

    def __init__(self, *, policy: ShellPolicy, log: OperationLog, state: StateStore,
                 clock: Callable[[], float] = time.time) -> None:
        self.policy = policy
        self.tickets = TicketStore()
        self.live = LiveShells(clock)
        self._log = log
        self._state = state
        self._clock = clock
        self._revoked: Callable[[str], bool] = lambda grant_id: False

    def specs(self) -> tuple[OperationSpec, ...]:
        """The ``shell.open`` operation for the dispatcher's catalogue."""
        return shell_specs(self.policy, self.tickets, self._clock)

    def attach(self, dispatcher: Dispatcher) -> None:
        self._revoked = dispatcher.is_revoked
        dispatcher.on_revoke(self.live.end_grant)

    async def session(self, requests: AsyncIterator[pb.ShellClientMessage],
                      ) -> AsyncIterator[pb.ShellServerMessage]:
        """The server side of one Shell stream (see the module docstring for refusals)."""
        first = await anext(requests, None)
        if first is None or first.WhichOneof("kind") != "open":
            raise BadInput("the first Shell message must be 'open'")
        opened = await self._open(first.open)
        live, binding = opened.live, opened.live.binding
        yield pb.ShellServerMessage(opened=pb.ShellOpened(
            shell_id=live.shell_id, session_id=binding.session_id, grant_id=binding.grant_id,
            case_id=binding.case_id, engineer=binding.engineer, seq=binding.seq))
        feeder = asyncio.create_task(self._feed(requests, opened))
        limits = asyncio.create_task(self._limits(opened))
        digest = hashlib.sha256()
        try:
            async for chunk in self._output(opened):
                digest.update(chunk)
                yield pb.ShellServerMessage(stdout=chunk)
        finally:
            for task in (feeder, limits):
                task.cancel()
            # gRPC may cancel the call's task again while the shell is being closed: the
            # close still runs to its end, or the shell stays listed and its result unrecorded.
            exit_message = await to_the_end(asyncio.ensure_future(
                self._close(opened, digest.hexdigest())))
        yield pb.ShellServerMessage(exit=exit_message)

    async def _open(self, request: pb.ShellOpen) -> _Opened:
        now = self._clock()
        try:
            binding, grant = await self._check(request, now)
            account = Account.lookup(self.policy.user)
        except TicketRefused as exc:
            await self._record(request, None, now, "denied", exc.reason, exc.detail)
            raise
        except KeyError as exc:
            await self._record(request, None, now, "denied", "shell-user-missing",
                               self.policy.user)
            raise TicketRefused("shell-user-missing", self.policy.user) from exc
        shell_id = self.live.new_id()
        index = await self._record(request, binding, now, "allowed", "", shell_id)
        try:
            pty = PtyShell.start(account, self.policy.shell, term=_term(request.term),
                                 cols=request.window.cols or 80, rows=request.window.rows or 24)
        except OSError as exc:
            _log.error("shell did not start", exc_info=exc, extra={"fields": {
                "shell_id": shell_id, "shell": self.policy.shell}})
            await to_the_end(self._log.submit(self._log.record_result, Result(
                attempt_id=index, at=self._clock(), outcome="error", detail=repr(exc))))
            raise OperationFailed("the shell did not start") from exc
        live = self.live.add(shell_id, binding, account.name)
        deadline, why = min((now + self.policy.max_duration, "max-duration"),
                            (float(grant.not_after), "grant-expired"))
        _log.info("shell started", extra={"fields": {
            "shell_id": shell_id, "session_id": binding.session_id,
            "grant_id": binding.grant_id, "engineer": binding.engineer, "user": account.name}})
        return _Opened(live, pty, deadline, why, index)

    async def _check(self, request: pb.ShellOpen, now: float) -> tuple[Binding, Grant]:
        if not self.policy.enabled:
            raise TicketRefused("shell-disabled", "agent.toml has no [shell] table")
        binding = self.tickets.redeem(request.ticket, request.engineer_key_id, now=now)
        stored = await self._state.submit(self._state.get_grant, binding.grant_id)
        if stored is None:
            raise TicketRefused("grant-unknown", binding.grant_id)
        try:
            grant = Grant.from_payload(stored.envelope.payload)
        except PermissionsError as exc:
            raise TicketRefused("malformed", str(exc)) from exc
        if self._revoked(grant.grant_id) or stored.revoked_at:
            raise TicketRefused("grant-revoked", grant.grant_id)
        if not grant.not_before <= now < grant.not_after:
            raise TicketRefused("grant-expired", f"window {grant.not_before}..{grant.not_after}")
        if "shell" not in grant.scopes or grant.engineer_key_id != binding.engineer_key_id:
            raise TicketRefused("scope-not-granted", "grant has no shell scope for this key")
        return binding, grant

    async def _record(self, request: pb.ShellOpen, binding: Binding | None, now: float,
                      outcome: str, reason: str, detail: str) -> int:
        params = {"term": request.term, "cols": request.window.cols,
                  "rows": request.window.rows}
        attempt = Attempt(
            at=now, outcome=outcome, reason=reason, detail=detail,
            operation_digest="sha256:" + hashlib.sha256(request.ticket.encode()).hexdigest(),
            envelope=b"", session_id=binding.session_id if binding else None,
            grant_id=binding.grant_id if binding else None,
            case_id=binding.case_id if binding else None,
            engineer=binding.engineer if binding else None, operation=LOGIN,
            params_json=json.dumps(params, sort_keys=True))
        if outcome != "allowed":
            _log.info("shell refused", extra={"fields": {"reason": reason, "detail": detail}})
        return await to_the_end(self._log.submit(self._log.record_attempt, attempt))

    async def _output(self, opened: _Opened) -> AsyncIterator[bytes]:
        """Output until the shell's terminal closes or something ends the shell."""
        live, pty = opened.live, opened.pty
        while not live.ended.done():
            chunk = pty.read_now()
            if chunk is None:  # nothing yet: wait for output or for the end
                ready: asyncio.Future[None] = asyncio.ensure_future(pty.readable())
                waiting: set[asyncio.Future[Any]] = {ready, live.ended}
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                ready.cancel()
                continue
            if not chunk:
                live.end("exited")
                return
            live.output(chunk, self._clock())
            yield chunk

    async def _feed(self, requests: AsyncIterator[pb.ShellClientMessage],
                    opened: _Opened) -> None:
        live = opened.live
        try:
            async for message in requests:
                if not await self._forward(opened, message):
                    return  # the shell is gone: its output side ends it as it ended
            live.end("disconnected")
        except BaseException:  # input that breaks off, however it does, ends the shell
            live.end("disconnected")
            raise

    async def _forward(self, opened: _Opened, message: pb.ShellClientMessage) -> bool:
        """Pass one message to the shell's terminal; False once the terminal refuses input."""
        pty, kind = opened.pty, message.WhichOneof("kind")
        try:
            if kind == "stdin":
                opened.live.last_activity = self._clock()
                await pty.write(message.stdin)
            elif kind == "resize":
                pty.resize(message.resize.cols, message.resize.rows)
            elif kind == "eof":
                await pty.write(b"\x04")
        except OSError:
            return False
        return True

    async def _limits(self, opened: _Opened) -> None:
        live, idle = opened.live, self.policy.idle_timeout
        while not live.ended.done():
            now = self._clock()
            if now >= opened.deadline:
                live.end(opened.deadline_reason)
            elif now >= live.last_activity + idle:
                live.end("idle-timeout")
            else:
                await asyncio.sleep(min(opened.deadline, live.last_activity + idle) - now + 0.01)

    async def _close(self, opened: _Opened, output_sha256: str) -> pb.ShellExit:
        live, pty = opened.live, opened.pty
        live.end("disconnected")  # the stream broke off; no-op if the shell had ended
        reason = live.ended.result()
        if reason != "exited":
            pty.hang_up()
        status = await asyncio.shield(pty.wait())
        pty.close()
        self.live.remove(live)
        now = self._clock()
        result = Result(attempt_id=opened.log_index, at=now,
                        outcome="ok" if reason == "exited" else "cancelled",
                        detail=f"{reason}, exit status {status}",
                        result_digest="sha256:" + output_sha256,
                        duration_ms=(now - live.started_at) * 1000)
        await to_the_end(self._log.submit(self._log.record_result, result))
        _log.info("shell ended", extra={"fields": {
            "shell_id": live.shell_id, "reason": reason, "status": status}})
        return pb.ShellExit(status=status, reason=reason, output_sha256=output_sha256)


def _term(term: str) -> str:
    """The client's TERM if it looks like a terminal name, else "dumb" (it becomes env)."""
    return term if _TERM.match(term) else "dumb"
