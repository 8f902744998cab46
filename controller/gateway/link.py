"""The gateway's stream to an agent (direct mode): ``AgentService.Shell`` over mutual TLS.

Only the controller's certificate can call it, and the agent's certificate is checked for
its DNS name, as :mod:`controller.relay` does. :class:`Link` is all the gateway uses of a
stream: :class:`ShellLink` here, or the stream a dial-out agent opened
(:mod:`controller.gateway.reverse`).
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import grpc

from pki.identity import Identity
from pki.tls import TlsFiles, secure_channel
from rmaint.v1 import agent_pb2 as pb
from rmaint.v1 import agent_pb2_grpc

OPEN_DEADLINE = 15.0


class LinkRefused(Exception):
    """The agent refused the ticket or could not be reached; ``code`` is its status."""

    def __init__(self, code: grpc.StatusCode, detail: str) -> None:
        super().__init__(f"{code.name}: {detail}")
        self.code = code


class Link(Protocol):
    """One open shell stream to an agent, after its ``opened`` message."""

    async def send(self, message: pb.ShellClientMessage) -> None: ...

    async def receive(self) -> pb.ShellServerMessage | None:
        """The next message; None when the stream has ended."""

    async def close(self) -> None: ...


class ShellLink:
    """One open Shell stream. :meth:`open` sends the ticket and waits for ``opened``."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._channel = channel
        self._call = agent_pb2_grpc.AgentServiceStub(channel).Shell()

    @classmethod
    async def open(cls, files: TlsFiles, trust_domain: str, agent_id: str, address: str,
                   request: pb.ShellOpen) -> tuple[ShellLink, pb.ShellOpened]:
        channel = secure_channel(address, files, Identity(trust_domain, "agent", agent_id))
        link = cls(channel)
        try:
            await link._call.write(pb.ShellClientMessage(open=request))
            first = await asyncio.wait_for(link._call.read(), OPEN_DEADLINE)
        except grpc.aio.AioRpcError as exc:
            await link.close()
            raise LinkRefused(exc.code(), exc.details() or "") from exc
        except BaseException:
            await link.close()
            raise
        if not isinstance(first, pb.ShellServerMessage) or first.WhichOneof("kind") != "opened":
            await link.close()
            raise LinkRefused(grpc.StatusCode.INTERNAL, "the agent did not open the shell")
        return link, first.opened

    async def send(self, message: pb.ShellClientMessage) -> None:
        await self._call.write(message)

    async def receive(self) -> pb.ShellServerMessage | None:
        """The next message; None when the stream has ended."""
        message = await self._call.read()
        return None if message is grpc.aio.EOF else message

    async def close(self) -> None:
        self._call.cancel()
        await self._channel.close()
