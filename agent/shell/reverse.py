"""Interactive login on a dial-out agent: the shell stream goes out to the controller.

A dial-out agent accepts no connections, so for each ticket it issues it opens
``AgentReportService.ShellLink`` to the controller, naming the ticket in the call's
metadata, and serves on it exactly what ``AgentService.Shell`` serves: the first message
from the controller must open the ticket, which is redeemed here for the engineer key the
SSH client proved, as in direct mode. The controller ends the stream when no login claims
it in time; a refusal (unknown ticket, wrong key, ...) ends it from here, logged with its
reason, and the gateway shows its uniform refusal.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc

from agent.errors import AgentError, Refused
from agent.shell.service import ShellService
from pki.identity import Identity
from pki.tls import TlsFiles, channel_options
from rmaint.v1 import agent_pb2 as pb
from rmaint.v1 import controller_pb2_grpc

SHELL_TICKET_HEADER = "rmaint-shell-ticket"
CLOSE_WAIT = 10.0  # seconds for the controller to end the call after the shell's exit
INBOX = 64  # messages read from the controller, not yet taken by the shell; then reads wait
_log = logging.getLogger("agent.shell")


class ReverseShells:
    """Opens a shell stream to the controller for each ticket issued; :meth:`close` ends them."""

    def __init__(self, service: ShellService, *, controller: str, trust_domain: str,
                 files: TlsFiles) -> None:
        self._service = service
        self._address = controller
        self._server = Identity(trust_domain, "controller")
        self._files = files
        self._tasks: set[asyncio.Task[None]] = set()
        service.tickets.on_issue.append(self.offer)

    def offer(self, ticket: str, expires_at: float) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(ticket))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, ticket: str) -> None:
        key, cert, ca = self._files.read()
        credentials = grpc.ssl_channel_credentials(ca, key, cert)
        async with grpc.aio.secure_channel(self._address, credentials,
                                           options=channel_options(self._server)) as channel:
            call = controller_pb2_grpc.AgentReportServiceStub(channel).ShellLink(
                metadata=((SHELL_TICKET_HEADER, ticket),))
            # One task reads the call: the session cancels its reader when the shell ends,
            # and a cancelled read would cancel the call before the exit is sent.
            inbox: asyncio.Queue[pb.ShellClientMessage | None] = asyncio.Queue(INBOX)
            reader = asyncio.create_task(_read(call, inbox))
            try:
                async for message in self._service.session(_drain(inbox)):
                    await call.write(message)
                await call.done_writing()
                # The controller ends the call once the gateway has read the exit.
                await asyncio.wait_for(call.code(), CLOSE_WAIT)
            except AgentError as exc:
                _refused(exc)
            except TimeoutError:
                pass
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.CANCELLED:
                    _log.warning("shell stream to the controller failed", extra={"fields": {
                        "event": "shell.reverse.failed", "code": exc.code().name,
                        "detail": exc.details() or ""}})
            finally:
                reader.cancel()
                call.cancel()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _read(call: Any, inbox: asyncio.Queue[pb.ShellClientMessage | None]) -> None:
    """Pass the call's messages on; a full inbox stops reading, so the controller's
    writes wait (flow control) instead of piling up here."""
    try:
        while (message := await call.read()) is not grpc.aio.EOF:
            await inbox.put(message)
    except grpc.aio.AioRpcError:
        pass  # the call ended: so does the session's input
    await inbox.put(None)


async def _drain(inbox: asyncio.Queue[pb.ShellClientMessage | None],
                 ) -> AsyncIterator[pb.ShellClientMessage]:
    while (message := await inbox.get()) is not None:
        yield message


def _refused(exc: AgentError) -> None:
    fields: dict[str, Any] = {"event": "shell.reverse.refused", "error": str(exc)}
    if isinstance(exc, Refused):
        fields.update(reason=exc.reason, detail=exc.detail)
    _log.info("shell login refused", extra={"fields": fields})
