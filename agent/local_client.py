"""Async client of the agent daemon's AgentLocalService on its Unix socket.

The socket's file mode (0600) is the access control: whoever can open it is the customer.
Answers come back as frozen values; access requests are re-verified here (signed by the
engineer key they carry) because the customer signs grants on the strength of them.
Each comes with the engineer keys the customer has pinned for its engineer name, and
``key_changed`` when it is signed by another key.

    LocalClientError            anything the daemon could not do, as one clear message
    ├── DaemonNotRunning        nothing listens on the socket
    ├── DaemonUnreachable       the socket exists but cannot be used (permissions, timeout)
    └── DaemonRefused           the daemon answered with an error status
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import grpc

from permissions import (
    AccessRequest,
    Envelope,
    Grant,
    PermissionsError,
    verify_access_request,
)
from rmaint.envelopes import from_wire, to_wire
from rmaint.v1 import agent_pb2, agent_pb2_grpc

NOT_RUNNING = "the agent is not running: start it with 'rmagent run'"
DEFAULT_TIMEOUT = 30.0  # above the daemon's own controller deadlines (sync: 5 s per call)
_Reply = TypeVar("_Reply")


# What the customer's own commands may be sent at once: the review of every pending change
# with its rows (the network's 4 MiB would cut a large data correction's review off).
LOCAL_ANSWER_LIMIT = 64 * 1024 * 1024


class LocalClientError(Exception):
    """A call to the daemon failed; ``str()`` is a message fit for the user."""


class DaemonNotRunning(LocalClientError):
    """Nothing listens on the agent's socket."""


class DaemonUnreachable(LocalClientError):
    """The socket exists but could not be used in time or with these permissions."""


class DaemonRefused(LocalClientError):
    """The daemon refused or failed the call; the message is the daemon's."""


@dataclass(frozen=True)
class EngineerPin:
    """An engineer key the customer accepted, pinned by the approval of ``request_id``."""

    engineer: str
    key_id: str
    pinned_at: int
    approver_key_id: str
    approver: str
    request_id: str
    grant_id: str


@dataclass(frozen=True)
class ReceivedRequest:
    """An access request as the agent keeps it, verified as signed by its engineer.

    ``pinned_keys`` are the keys accepted for its engineer name (none: a first request);
    ``key_changed`` says the request carries none of them.
    """

    request: AccessRequest
    envelope: Envelope
    status: str
    received_at: int
    key_changed: bool = False
    pinned_keys: tuple[EngineerPin, ...] = ()


@dataclass(frozen=True)
class KnownGrant:
    """A grant as the agent keeps it; status is by the agent's clock."""

    grant: Grant
    envelope: Envelope
    status: str
    revoked_at: int


@dataclass(frozen=True)
class AgentStatus:
    agent_id: str
    listen: str
    controller: str
    approver_key_ids: tuple[str, ...]
    operations_in_flight: int
    unreported: int


@dataclass(frozen=True)
class Delivery:
    """Outcome of storing a decision: the daemon reports it now or retries later."""

    reported: bool
    grant_id: str = ""
    cancelled_operations: int = 0


def _connect_failure(socket: Path, details: str) -> LocalClientError:
    if "Permission denied" in details:
        return DaemonUnreachable(
            f"cannot use the agent's socket {socket}: permission denied "
            "(run rmagent as the user that runs the daemon)")
    return DaemonNotRunning(NOT_RUNNING)


def _unavailable(socket: Path, details: str) -> LocalClientError:
    if "failed to connect" in details:
        return _connect_failure(socket, details)
    return DaemonRefused(details or NOT_RUNNING)


# The one translation of gRPC statuses into what the customer reads.
_STATUS: dict[grpc.StatusCode, Callable[[Path, str], LocalClientError]] = {
    grpc.StatusCode.UNAVAILABLE: _unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: lambda s, d: DaemonUnreachable(
        "the agent did not answer in time"),
    grpc.StatusCode.INVALID_ARGUMENT: lambda s, d: DaemonRefused(d or "the agent refused it"),
    grpc.StatusCode.FAILED_PRECONDITION: lambda s, d: DaemonRefused(d or "the agent refused it"),
    grpc.StatusCode.NOT_FOUND: lambda s, d: DaemonRefused(d or "not found"),
    grpc.StatusCode.ALREADY_EXISTS: lambda s, d: DaemonRefused(d or "already done"),
    grpc.StatusCode.PERMISSION_DENIED: lambda s, d: DaemonRefused(
        f"the agent refused it: {d or 'permission denied'}"),
    grpc.StatusCode.UNIMPLEMENTED: lambda s, d: DaemonRefused(
        "the running agent does not support this command: restart it with this version"),
}


def translate(exc: grpc.aio.AioRpcError, socket: Path) -> LocalClientError:
    """The user-facing error for a failed call on ``socket``."""
    details = exc.details() or ""
    make = _STATUS.get(exc.code())
    if make is None:
        return DaemonRefused(f"the agent failed: {exc.code().name.lower()}: {details}")
    return make(socket, details)


class LocalClient:
    """One connection to the daemon at ``socket``; use as ``async with``."""

    def __init__(self, socket: Path, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._socket = socket.absolute()
        self._timeout = timeout
        self._channel = grpc.aio.insecure_channel(
            f"unix:{self._socket}",
            options=[("grpc.max_receive_message_length", LOCAL_ANSWER_LIMIT)])
        self._stub = agent_pb2_grpc.AgentLocalServiceStub(self._channel)

    async def __aenter__(self) -> LocalClient:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def _call(self, rpc: Callable[..., Awaitable[_Reply]], request: object) -> _Reply:
        if not self._socket.exists():
            raise DaemonNotRunning(NOT_RUNNING)
        try:
            return await rpc(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise translate(exc, self._socket) from exc

    async def list_requests(self, *, include_decided: bool = False,
                            sync: bool = False) -> tuple[list[ReceivedRequest], str]:
        """Requests newest first, and why syncing failed ("" if it did not)."""
        reply = await self._call(self._stub.ListRequests, agent_pb2.ListRequestsRequest(
            include_decided=include_decided, sync=sync))
        return [_received(r) for r in reply.requests], reply.sync_error

    async def list_grants(self, *, include_inactive: bool = False) -> list[KnownGrant]:
        reply = await self._call(self._stub.ListGrants, agent_pb2.ListGrantsRequest(
            include_inactive=include_inactive))
        return [_known(g) for g in reply.grants]

    async def approve(self, grant: Envelope, *, accept_new_key: bool = False) -> Delivery:
        """Store ``grant``; ``accept_new_key`` accepts (and pins) a changed engineer key."""
        reply = await self._call(self._stub.Approve, agent_pb2.ApproveRequest(
            grant=to_wire(grant), accept_new_key=accept_new_key))
        return Delivery(reported=reply.reported, grant_id=reply.grant_id)

    async def deny(self, denial: Envelope) -> Delivery:
        reply = await self._call(self._stub.Deny, agent_pb2.DenyRequest(denial=to_wire(denial)))
        return Delivery(reported=reply.reported)

    async def revoke(self, revocation: Envelope) -> Delivery:
        reply = await self._call(self._stub.Revoke, agent_pb2.RevokeRequest(
            revocation=to_wire(revocation)))
        return Delivery(reported=reply.reported,
                        cancelled_operations=reply.cancelled_operations)

    async def engineer_keys(self) -> list[EngineerPin]:
        """The pinned engineer keys, by engineer name, oldest first."""
        reply = await self._call(self._stub.ListEngineerKeys,
                                 agent_pb2.ListEngineerKeysRequest())
        return [_pin(k) for k in reply.keys]

    async def forget_engineer_keys(self, engineer: str, key_id: str = "") -> list[EngineerPin]:
        """Remove the pins of ``engineer`` (only ``key_id`` if given); those removed."""
        reply = await self._call(self._stub.ForgetEngineerKeys,
                                 agent_pb2.ForgetEngineerKeysRequest(engineer=engineer,
                                                                     key_id=key_id))
        return [_pin(k) for k in reply.forgotten]

    async def list_shells(self) -> list[agent_pb2.LiveShell]:
        """Interactive shells running now, oldest first."""
        reply = await self._call(self._stub.ListShells, agent_pb2.ListShellsRequest())
        return list(reply.shells)

    async def kill_shell(self, shell_id: str) -> agent_pb2.LiveShell:
        reply: agent_pb2.KillShellResponse = await self._call(
            self._stub.KillShell, agent_pb2.KillShellRequest(shell_id=shell_id))
        return reply.shell

    async def watch_shell(self, shell_id: str) -> AsyncIterator[agent_pb2.WatchShellResponse]:
        """The shell's output from now until it ends (no deadline)."""
        if not self._socket.exists():
            raise DaemonNotRunning(NOT_RUNNING)
        call = self._stub.WatchShell(agent_pb2.WatchShellRequest(shell_id=shell_id))
        try:
            async for message in call:
                yield message
        except grpc.aio.AioRpcError as exc:
            raise translate(exc, self._socket) from exc

    async def list_changes(self, *, include_decided: bool = False, digest_prefix: str = "",
                           limit: int = 0) -> tuple[list[agent_pb2.PendingChange], int]:
        """Previewed changes newest first, with their unmasked images (at most ``limit``,
        0: all), and how many there are, the limit aside."""
        reply: agent_pb2.ListChangesResponse = await self._call(
            self._stub.ListChanges, agent_pb2.ListChangesRequest(
                include_decided=include_decided, digest_prefix=digest_prefix, limit=limit))
        return list(reply.changes), reply.total

    async def approve_change(self, consent: Envelope) -> agent_pb2.ApproveChangeResponse:
        """Store a signed change consent for a pending preview."""
        reply: agent_pb2.ApproveChangeResponse = await self._call(
            self._stub.ApproveChange, agent_pb2.ApproveChangeRequest(consent=to_wire(consent)))
        return reply

    async def deny_change(self, digest: str, reason: str) -> None:
        await self._call(self._stub.DenyChange,
                         agent_pb2.DenyChangeRequest(digest=digest, reason=reason))

    async def status(self) -> AgentStatus:
        reply = await self._call(self._stub.Status, agent_pb2.StatusRequest())
        return AgentStatus(reply.agent_id, reply.listen, reply.controller,
                           tuple(reply.approver_key_ids), reply.operations_in_flight,
                           reply.unreported)

    async def sync(self) -> agent_pb2.SyncResponse:
        """A sync round and a witnessing round now; failures are in the answer's fields."""
        reply: agent_pb2.SyncResponse = await self._call(self._stub.Sync,
                                                         agent_pb2.SyncRequest())
        return reply


def _received(message: agent_pb2.PendingRequest) -> ReceivedRequest:
    try:
        envelope = from_wire(message.request)
        request = verify_access_request(envelope)
    except PermissionsError as exc:
        raise DaemonRefused(f"the agent returned an access request that does not verify: {exc}"
                            ) from exc
    pins = tuple(_pin(k) for k in message.pinned_keys)
    # The daemon's flag, or the same conclusion drawn here from the pins it sent.
    changed = message.key_changed or (
        bool(pins) and request.engineer_key_id not in {k.key_id for k in pins})
    return ReceivedRequest(request, envelope, message.status, message.received_at,
                           changed, pins)


def _pin(message: agent_pb2.EngineerKey) -> EngineerPin:
    return EngineerPin(message.engineer, message.key_id, message.pinned_at,
                       message.approver_key_id, message.approver, message.request_id,
                       message.grant_id)


def _known(message: agent_pb2.GrantState) -> KnownGrant:
    try:
        envelope = from_wire(message.grant)
        grant = Grant.from_payload(envelope.payload)
    except PermissionsError as exc:
        raise DaemonRefused(f"the agent returned a grant that does not parse: {exc}") from exc
    return KnownGrant(grant, envelope, message.status, message.revoked_at)
