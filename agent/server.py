"""The agent's two gRPC servers.

* mTLS on ``listen``: AgentService (controller identity only), health and reflection;
* the Unix socket ``unix:<home>/rmagent.sock`` (mode 0600): AgentLocalService, health.

Both pass every call through :class:`agent.authz.Authorizer` and use
``pki.tls.server_options()`` (4 MiB messages).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import stat
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from agent.authz import LOCAL, Authorizer
from agent.dispatcher import Dispatcher
from agent.errors import StartupError
from agent.local_client import LOCAL_ANSWER_LIMIT
from agent.local_service import LocalServicer
from agent.locks import LockKeeper
from agent.renewal import reloading_server_credentials
from agent.rpc import translated, translated_stream
from agent.shell.rpc import serve_shell
from agent.shell.service import ShellService
from pki.files import reason
from pki.tls import TlsFiles, bind_problem, server_options, why_not_listening
from rmaint.envelopes import to_wire
from rmaint.health import HealthServicer
from rmaint.v1 import agent_pb2, agent_pb2_grpc

AGENT_SERVICE = agent_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name
LOCAL_SERVICE = agent_pb2.DESCRIPTOR.services_by_name["AgentLocalService"].full_name
PARTS_AHEAD = 4  # output parts of a streaming operation waiting for the transport
_MAX_UNIX_PATH = 107  # sun_path holds 108 bytes including the terminating NUL


class AgentServicer(agent_pb2_grpc.AgentServiceServicer):
    """Execute and ExecuteStream: the network transport of the dispatcher."""

    def __init__(self, dispatcher: Dispatcher, shell: ShellService | None = None,
                 locks: LockKeeper | None = None) -> None:
        self._dispatcher = dispatcher
        self._shell = shell
        self._locks = locks

    @translated
    async def Execute(self, request: agent_pb2.ExecuteRequest,
                      context: grpc.aio.ServicerContext) -> agent_pb2.ExecuteResponse:
        return await execute(self._dispatcher, request)

    async def ExecuteStream(self, request: agent_pb2.ExecuteRequest,
                            context: grpc.aio.ServicerContext,
                            ) -> AsyncIterator[agent_pb2.StreamPart]:
        async for part in translated_stream(execute_stream(self._dispatcher, request),
                                            context, "ExecuteStream"):
            yield part

    @translated
    async def ApplyLocks(self, request: agent_pb2.LockSet,
                         context: grpc.aio.ServicerContext) -> agent_pb2.ApplyLocksResponse:
        """The controller's lock set, pushed (see agent.locks)."""
        if self._locks is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "locks are not kept here")
            raise AssertionError("context.abort returned")
        await self._locks.apply(request, "push")
        return agent_pb2.ApplyLocksResponse(version=self._locks.version)

    async def Shell(self, request_iterator: AsyncIterator[agent_pb2.ShellClientMessage],
                    context: grpc.aio.ServicerContext,
                    ) -> AsyncIterator[agent_pb2.ShellServerMessage]:
        async for message in serve_shell(self._shell, request_iterator, context):
            yield message


async def execute(dispatcher: Dispatcher,
                  request: agent_pb2.ExecuteRequest) -> agent_pb2.ExecuteResponse:
    """An ExecuteRequest through the dispatcher, as every transport runs it (raises its
    AgentError; the transport turns that into a status with ``agent.rpc.failure_status``)."""
    done = await dispatcher.execute(request.operation)
    return agent_pb2.ExecuteResponse(result_json=done.result_json, receipt=to_wire(done.receipt))


async def execute_stream(dispatcher: Dispatcher, request: agent_pb2.ExecuteRequest,
                         ) -> AsyncGenerator[agent_pb2.StreamPart, None]:
    """A streaming ExecuteRequest through the dispatcher, as every transport runs it: the
    output parts as they come, then ``done`` (raises its AgentError like :func:`execute`).

    The operation runs in its own task; at most :data:`PARTS_AHEAD` parts wait for the
    transport, so a slow reader slows the operation instead of filling memory. Closing
    the iterator early (the caller went away) cancels the operation."""
    parts: asyncio.Queue[bytes] = asyncio.Queue(PARTS_AHEAD)
    task = asyncio.create_task(dispatcher.execute_stream(request.operation, parts.put))
    getter: asyncio.Future[bytes] | None = None
    try:
        while True:
            getter = asyncio.ensure_future(parts.get())
            await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():  # the operation ended: what it sent is queued
                getter.cancel()
                break
            yield agent_pb2.StreamPart(data=getter.result())
        while not parts.empty():
            yield agent_pb2.StreamPart(data=parts.get_nowait())
        done = await task  # raises the operation's AgentError
        yield agent_pb2.StreamPart(done=agent_pb2.ExecuteResponse(
            result_json=done.result_json, receipt=to_wire(done.receipt)))
    finally:
        if getter is not None:
            getter.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


async def start_network_server(listen: str, trust_domain: str, files: TlsFiles,
                                dispatcher: Dispatcher, shell: ShellService | None = None,
                                locks: LockKeeper | None = None,
                                ) -> tuple[grpc.aio.Server, int]:
    """The started mTLS server and its bound port; StartupError if it cannot listen."""
    server = grpc.aio.server(
        interceptors=[Authorizer(trust_domain=trust_domain, transport="mtls")],
        options=server_options())
    agent_pb2_grpc.add_AgentServiceServicer_to_server(AgentServicer(dispatcher, shell, locks),
                                                      server)
    await _add_health(server, AGENT_SERVICE)
    reflection.enable_server_reflection(
        (AGENT_SERVICE, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
         reflection.SERVICE_NAME), server)
    try:
        credentials = reloading_server_credentials(files)  # serves a renewed certificate
    except OSError as exc:
        raise StartupError(f"cannot read the agent's TLS files: {reason(exc)}") from exc
    problem = bind_problem(listen)
    if problem is not None:
        raise StartupError(f"cannot listen on {listen}: {problem}")
    try:
        port = server.add_secure_port(listen, credentials)
    except RuntimeError as exc:
        raise StartupError(f"cannot listen on {listen}: {why_not_listening(listen)}") from exc
    await server.start()
    return server, port


async def start_local_server(path: Path, trust_domain: str,
                             local: LocalServicer) -> grpc.aio.Server:
    """The started Unix-socket server, its socket file mode 0600."""
    _claim_socket_path(path)
    server = grpc.aio.server(
        interceptors=[Authorizer(trust_domain=trust_domain, transport=LOCAL)],
        options=[*(o for o in server_options() if o[0] != "grpc.max_send_message_length"),
                 ("grpc.max_send_message_length", LOCAL_ANSWER_LIMIT)])
    agent_pb2_grpc.add_AgentLocalServiceServicer_to_server(local, server)
    await _add_health(server, LOCAL_SERVICE)
    try:
        server.add_insecure_port(f"unix:{path}")
    except RuntimeError as exc:
        raise StartupError(f"cannot listen on {path}: {exc}") from exc
    await server.start()
    os.chmod(path, 0o600)  # the socket's mode is the customer's access control
    return server


async def _add_health(server: grpc.aio.Server, service: str) -> None:
    health = HealthServicer()
    for name in ("", service):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)


def _claim_socket_path(path: Path) -> None:
    """Refuse a path that is too long or in use; remove a socket left by a dead daemon."""
    if len(os.fsencode(path)) > _MAX_UNIX_PATH:
        raise StartupError(f"socket path {path} is too long; set a shorter [agent] socket "
                           "in agent.toml")
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise StartupError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()  # nobody listens: a leftover
        return
    finally:
        probe.close()
    raise StartupError(f"another rmagent is already serving {path}")
