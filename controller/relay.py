"""Reaching agents: over their own stream when they dialled in, else by dialling them.

:meth:`Relay.execute` prefers the agent's dial-out stream (:mod:`controller.dialin`) when
it holds one, dials the agent's address (direct mode) when it has one, and otherwise
reports UNAVAILABLE "agent offline". In direct mode the controller authenticates with
its own certificate and checks the agent's DNS SAN ``<agent-id>.agent.<trust-domain>``
(``pki.tls.secure_channel``), so an address taken over by another host is refused by
TLS. A channel is replaced when the agent reports a new address.
:meth:`Relay.execute_stream` does the same for streaming operations, part by part.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc

from pki.identity import Identity
from pki.tls import TlsFiles, secure_channel
from rmaint.v1 import agent_pb2, agent_pb2_grpc

if TYPE_CHECKING:
    from controller.dialin import DialIn

EXECUTE_DEADLINE = 30.0
# A streaming operation runs as long as it says (a watch up to 24 h); this only bounds a
# call whose agent stopped answering altogether.
STREAM_DEADLINE = 24 * 3600.0 + 600.0
OFFLINE = "agent offline"
OnPart = Callable[[bytes], Awaitable[None]]


class Outcome(enum.StrEnum):
    """How a relayed operation ended, as the session log records it."""

    OK = "ok"
    DENIED = "denied"
    ERROR = "error"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Relayed:
    """The agent's answer, or the gRPC status (``code``, ``detail``) that came instead."""

    response: agent_pb2.ExecuteResponse | None = None
    code: grpc.StatusCode = grpc.StatusCode.OK
    detail: str = ""

    @property
    def outcome(self) -> Outcome:
        if self.response is not None:
            return Outcome.OK
        return _OUTCOMES.get(self.code, Outcome.ERROR)


# The agent refuses with PERMISSION_DENIED (also for operations a revocation cancelled).
_OUTCOMES = {
    grpc.StatusCode.PERMISSION_DENIED: Outcome.DENIED,
    grpc.StatusCode.CANCELLED: Outcome.CANCELLED,
}


class Relay:
    """Sends operations to agents; :meth:`close` closes every channel.

    ``dialin`` holds the streams of dial-out agents (None: direct mode only)."""

    def __init__(self, files: TlsFiles, trust_domain: str, *,
                 deadline: float = EXECUTE_DEADLINE, dialin: DialIn | None = None) -> None:
        self._files = files
        self.dialin = dialin
        self._trust_domain = trust_domain
        self._deadline = deadline
        # agent id -> (address, channel, stub); the stub is made once per channel.
        self._channels: dict[str, tuple[str, grpc.aio.Channel, agent_pb2_grpc.AgentServiceStub]] = {}
        self._lock = asyncio.Lock()

    async def execute(self, agent_id: str, address: str,
                      request: agent_pb2.ExecuteRequest) -> Relayed:
        """Relay one ExecuteRequest; never raises for gRPC failures, it reports them."""
        if self.dialin is not None:
            relayed = await self.dialin.call(agent_id, request, self._deadline)
            if relayed is not None:
                return relayed
        if not address:
            return Relayed(None, grpc.StatusCode.UNAVAILABLE, OFFLINE)
        stub = await self._stub(agent_id, address)
        try:
            response = await stub.Execute(request, timeout=self._deadline)
        except grpc.aio.AioRpcError as exc:
            return Relayed(None, exc.code(), exc.details() or "")
        return Relayed(response)

    async def execute_stream(self, agent_id: str, address: str,
                             request: agent_pb2.ExecuteRequest, on_part: OnPart) -> Relayed:
        """Relay one streaming ExecuteRequest, handing each output part to ``on_part`` as
        it arrives; the final answer or status as :meth:`execute` reports it. An error
        raised by ``on_part`` cancels the call on the agent and propagates."""
        if self.dialin is not None:
            relayed = await self.dialin.call_stream(agent_id, request, STREAM_DEADLINE,
                                                    on_part)
            if relayed is not None:
                return relayed
        if not address:
            return Relayed(None, grpc.StatusCode.UNAVAILABLE, OFFLINE)
        stub = await self._stub(agent_id, address)
        call = stub.ExecuteStream(request, timeout=STREAM_DEADLINE)
        try:
            async for part in call:
                if part.WhichOneof("kind") == "done":
                    return Relayed(part.done)
                await on_part(part.data)
        except grpc.aio.AioRpcError as exc:
            return Relayed(None, exc.code(), exc.details() or "")
        finally:
            call.cancel()  # nothing once the call ended; else the agent stops the operation
        return Relayed(None, grpc.StatusCode.INTERNAL, "the agent's stream ended without a result")

    async def _stub(self, agent_id: str, address: str) -> agent_pb2_grpc.AgentServiceStub:
        cached = self._channels.get(agent_id)
        if cached is not None and cached[0] == address:
            return cached[2]  # the usual case: no lock, no await
        async with self._lock:
            cached = self._channels.get(agent_id)
            if cached is not None and cached[0] == address:
                return cached[2]
            if cached is not None:
                await cached[1].close()
            identity = Identity(self._trust_domain, "agent", agent_id)
            channel = secure_channel(address, self._files, identity)
            stub = agent_pb2_grpc.AgentServiceStub(channel)
            self._channels[agent_id] = (address, channel, stub)
            return stub

    async def close(self) -> None:
        async with self._lock:
            channels = [channel for _, channel, _ in self._channels.values()]
            self._channels.clear()
        for channel in channels:
            await channel.close()
