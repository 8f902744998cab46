"""Interactive login to dial-out agents: shell streams the agent opens to the controller.

A dial-out agent accepts no connections, so the gateway cannot call its Shell service.
Instead, when the agent issues a shell ticket (the operation ``shell.open``, relayed over
its Connect stream), it opens ``AgentReportService.ShellLink`` naming that ticket and waits.
The gateway's login for that agent and ticket claims the waiting stream and uses it exactly
as :class:`controller.gateway.link.ShellLink`: the same messages, the same checks on the
agent (the ticket is redeemed there, for the engineer key the SSH client proved).

An offer is keyed by the agent's certificate identity and the ticket's SHA-256, so one
agent can never answer another's login; it is dropped when its ticket would have expired.
One agent holds at most ``MAX_OFFERS_PER_AGENT`` offers (so it cannot take the room of
every other agent's logins); a new one then ends its oldest, since a login claims its
stream within seconds of its ticket: tickets nobody used cannot keep the next login out.
The gateway's input waits while ``OUTBOX`` messages are not yet taken by the agent
(backpressure, as gRPC flow control gives in direct mode).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

import grpc

from controller.errors import FailedPrecondition
from controller.gateway.link import OPEN_DEADLINE, LinkRefused
from rmaint.v1 import agent_pb2 as pb

SHELL_TICKET_HEADER = "rmaint-shell-ticket"  # the ShellLink call's metadata naming its ticket
OFFER_TTL = 75.0  # a ticket lives at most 60 s on the agent; then the offer is useless
CLAIM_WAIT = 10.0  # the login may arrive before the agent's stream does
MAX_OFFERS = 256  # per controller process: each is an open stream
MAX_OFFERS_PER_AGENT = 4  # a login claims one within seconds of its ticket
OUTBOX = 64  # messages to the agent not yet sent; then the gateway's input waits
_END = None


class _Superseded(Exception):
    """An unclaimed offer made room for a newer one of the same agent."""


def _key(agent_id: str, ticket: str) -> tuple[str, str]:
    return agent_id, hashlib.sha256(ticket.encode()).hexdigest()


class ReverseLink:
    """The gateway's end of one claimed ShellLink stream (as ShellLink offers it)."""

    def __init__(self, incoming: AsyncIterator[pb.ShellServerMessage]) -> None:
        self._incoming = incoming
        self._outgoing: asyncio.Queue[pb.ShellClientMessage | None] = asyncio.Queue(OUTBOX)
        self.claimed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def send(self, message: pb.ShellClientMessage) -> None:
        await self._outgoing.put(message)

    async def receive(self) -> pb.ShellServerMessage | None:
        """The next message; None when the agent ended the stream, however it ended it."""
        try:
            return await anext(self._incoming, None)
        except asyncio.CancelledError:  # the agent's call was cancelled under the reader
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            return None
        except Exception:  # a broken call is an ended stream here
            return None

    async def close(self) -> None:
        while not self._outgoing.empty():  # unsent input is dropped: the session is over
            self._outgoing.get_nowait()
        self._outgoing.put_nowait(_END)

    async def outgoing(self) -> AsyncIterator[pb.ShellClientMessage]:
        while (message := await self._outgoing.get()) is not _END:
            yield message


class ReverseShells:
    """The streams dial-out agents hold open for logins, by agent and ticket."""

    def __init__(self) -> None:
        self._offers: dict[tuple[str, str], ReverseLink] = {}
        self._arrived: dict[tuple[str, str], asyncio.Event] = {}

    async def serve(self, agent_id: str, ticket: str,
                    incoming: AsyncIterator[pb.ShellServerMessage],
                    ) -> AsyncIterator[pb.ShellClientMessage]:
        """The agent's side: offer the stream for ``ticket``, then carry the gateway's
        messages until it closes; ends quietly if no login claims it in time."""
        key = _key(agent_id, ticket)
        if key in self._offers or len(self._offers) >= MAX_OFFERS:
            raise FailedPrecondition("no room for another shell stream")
        theirs = [k for k in self._offers if k[0] == agent_id]  # oldest first
        if len(theirs) >= MAX_OFFERS_PER_AGENT:
            self._supersede(theirs[0])
        link = ReverseLink(incoming)
        self._offers[key] = link
        self._arrived.setdefault(key, asyncio.Event()).set()
        try:
            await asyncio.wait_for(asyncio.shield(link.claimed), OFFER_TTL)
        except (TimeoutError, _Superseded):
            return
        finally:
            if self._offers.get(key) is link:
                del self._offers[key]
                self._arrived.pop(key, None)
        async for message in link.outgoing():
            yield message

    async def claim(self, agent_id: str, request: pb.ShellOpen,
                    ) -> tuple[ReverseLink, pb.ShellOpened]:
        """The gateway's side: the agent's stream for ``request.ticket``, opened as
        ShellLink.open does; LinkRefused when none comes or the agent refuses."""
        key = _key(agent_id, request.ticket)
        arrived = self._arrived.setdefault(key, asyncio.Event())
        try:
            await asyncio.wait_for(arrived.wait(), CLAIM_WAIT)
        except TimeoutError:
            raise LinkRefused(grpc.StatusCode.UNAVAILABLE,
                              "the agent opened no shell stream for the ticket") from None
        finally:
            if not arrived.is_set():
                self._arrived.pop(key, None)
        link = self._offers.pop(key, None)
        self._arrived.pop(key, None)  # taken (or gone): nothing waits on it any more
        if link is None or link.claimed.done():
            raise LinkRefused(grpc.StatusCode.UNAVAILABLE, "the shell stream was taken")
        link.claimed.set_result(None)
        try:
            await link.send(pb.ShellClientMessage(open=request))
            first = await asyncio.wait_for(link.receive(), OPEN_DEADLINE)
        except BaseException:
            await link.close()
            raise
        if first is None or first.WhichOneof("kind") != "opened":
            await link.close()
            raise LinkRefused(grpc.StatusCode.PERMISSION_DENIED, "the agent refused the ticket")
        return link, first.opened

    def _supersede(self, key: tuple[str, str]) -> None:
        link = self._offers.pop(key)
        self._arrived.pop(key, None)
        link.claimed.set_exception(_Superseded())

    def offered(self) -> int:
        return len(self._offers)
