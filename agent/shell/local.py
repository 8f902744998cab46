"""The customer's side of live shells on the local socket: list, watch, kill.

A mixin for :class:`agent.local_service.LocalServicer`, which sets ``_shells`` and
``_clock``. Ending a shell here hangs it up at once; the engineer's stream then reports
"killed".
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

import grpc

from agent.errors import NotFound
from agent.rpc import translated
from agent.shell.live import LiveShell, LiveShells
from rmaint.v1 import agent_pb2 as pb

_log = logging.getLogger("agent.local")


class ShellLocalMethods:
    _shells: LiveShells
    _clock: Callable[[], float]

    @translated
    async def ListShells(self, request: pb.ListShellsRequest,
                         context: grpc.aio.ServicerContext) -> pb.ListShellsResponse:
        return pb.ListShellsResponse(shells=[self._message(s) for s in self._shells.list()])

    @translated
    async def KillShell(self, request: pb.KillShellRequest,
                        context: grpc.aio.ServicerContext) -> pb.KillShellResponse:
        shell = self._shells.kill(request.shell_id)
        _log.info("shell killed by the customer", extra={"fields": {
            "shell_id": shell.shell_id, "session_id": shell.binding.session_id}})
        return pb.KillShellResponse(shell=self._message(shell))

    async def WatchShell(self, request: pb.WatchShellRequest,
                         context: grpc.aio.ServicerContext,
                         ) -> AsyncIterator[pb.WatchShellResponse]:
        try:
            shell = self._shells.get(request.shell_id)
        except NotFound as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        _log.info("shell watched by the customer", extra={"fields": {"shell_id": shell.shell_id}})
        # No await between the log line and the watcher's registration in watch().
        async for chunk in self._shells.watch(request.shell_id):
            yield pb.WatchShellResponse(stdout=chunk)
        if shell.ended.done():
            yield pb.WatchShellResponse(exit=pb.ShellExit(reason=shell.ended.result()))

    def _message(self, shell: LiveShell) -> pb.LiveShell:
        b = shell.binding
        return pb.LiveShell(shell_id=shell.shell_id, engineer=b.engineer,
                            session_id=b.session_id, case_id=b.case_id, grant_id=b.grant_id,
                            started_at=shell.started_at, user=shell.user,
                            idle_seconds=max(0.0, self._clock() - shell.last_activity))
