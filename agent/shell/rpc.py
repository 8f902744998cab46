"""The gRPC side of ``AgentService.Shell``: errors become statuses once, here.

Like :func:`agent.rpc.translated` for unary calls: an AgentError aborts with its status
from ``agent.errors.STATUS_TABLE`` (a refusal is PERMISSION_DENIED "permission denied",
its reason logged); anything else is logged with its traceback and is INTERNAL.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from agent.errors import AgentError, Refused, status_of
from agent.rpc import INTERNAL_TEXT
from agent.shell.service import ShellService
from rmaint.handlers import MALFORMED
from rmaint.v1 import agent_pb2 as pb

_log = logging.getLogger("agent.rpc")


async def serve_shell(service: ShellService | None,
                      requests: AsyncIterator[pb.ShellClientMessage],
                      context: grpc.aio.ServicerContext) -> AsyncIterator[pb.ShellServerMessage]:
    """The messages of one Shell call; aborts the call on any error."""
    if service is None:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "interactive login is not served")
    assert service is not None
    try:
        async for message in service.session(requests):
            yield message
    except AgentError as exc:
        code, text = status_of(exc)
        fields: dict[str, Any] = {"method": "Shell", "code": code.name, "error": str(exc)}
        if isinstance(exc, Refused):
            fields.update(reason=exc.reason, detail=exc.detail)
        _log.info("call failed", extra={"fields": fields})
        await context.abort(code, text)
    except grpc.aio.AbortError:
        raise
    except DecodeError:  # grpc decodes a stream's messages as they are read, here
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, MALFORMED)
    except Exception:
        _log.exception("call failed unexpectedly", extra={"fields": {"method": "Shell"}})
        await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_TEXT)
