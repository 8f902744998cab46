"""gRPC health checking as both servers offer it."""

from __future__ import annotations

from typing import Any

from grpc_health.v1 import health, health_pb2


class HealthServicer(health.aio.HealthServicer):  # type: ignore[misc]  # untyped base
    """The library's servicer, with ``List`` too: it leaves that method unimplemented
    (an exception, which a server would report as its own failure)."""

    async def List(self, request: health_pb2.HealthListRequest,
                   context: Any) -> health_pb2.HealthListResponse:
        # The library keeps every service's status here, as set() and shutdown leave it.
        statuses = dict(self._server_status)
        return health_pb2.HealthListResponse(statuses={
            name: health_pb2.HealthCheckResponse(status=status)
            for name, status in statuses.items()})
