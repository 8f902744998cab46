"""The gRPC boundary: agent errors become statuses here, once, through errors.STATUS_TABLE.

Any other exception is a bug: it is logged here with its traceback, and the caller gets
INTERNAL "internal error" and nothing of its text (uniform outward, detailed inward).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from agent.errors import AgentError, BadInput, Refused, status_of
from permissions import Envelope, MalformedStatement, peek
from rmaint.envelopes import from_wire
from rmaint.v1 import common_pb2

_log = logging.getLogger("agent.rpc")

S = TypeVar("S")
Q = TypeVar("Q")
R = TypeVar("R")
Handler = Callable[[S, Q, grpc.aio.ServicerContext], Awaitable[R]]


INTERNAL_TEXT = "internal error"


def translated(method: Handler[S, Q, R]) -> Handler[S, Q, R]:
    """Run ``method``; abort with the table's status for an AgentError, INTERNAL otherwise."""
    @functools.wraps(method)
    async def handler(self: S, request: Q, context: grpc.aio.ServicerContext) -> R:
        try:
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise  # the method aborted the call itself, with its own status
        except Exception as exc:
            code, text = failure_status(exc, method.__name__)
            await context.abort(code, text)
            raise AssertionError("context.abort returned") from exc
    return handler


async def translated_stream(items: AsyncIterator[R], context: grpc.aio.ServicerContext,
                            method: str) -> AsyncIterator[R]:
    """``items`` as a server-streaming method sends them; an error aborts the call as
    :func:`translated` does (messages already sent stay sent)."""
    try:
        async for item in items:
            yield item
    except grpc.aio.AbortError:
        raise
    except Exception as exc:
        code, text = failure_status(exc, method)
        await context.abort(code, text)


def failure_status(exc: Exception, method: str) -> tuple[grpc.StatusCode, str]:
    """The status a call that raised ``exc`` ends with, logged here with its detail.

    The one translation for every transport (the mTLS server and the dial-out stream)."""
    if isinstance(exc, AgentError):
        code, text = status_of(exc)
        fields: dict[str, Any] = {"method": method, "code": code.name, "error": str(exc)}
        if isinstance(exc, Refused):
            fields.update(reason=exc.reason, detail=exc.detail)
        _log.info("call failed", extra={"fields": fields})
        return code, text
    _log.error("call failed unexpectedly", exc_info=exc, extra={"fields": {
        "method": method, "code": grpc.StatusCode.INTERNAL.name}})
    return grpc.StatusCode.INTERNAL, INTERNAL_TEXT


def envelope_field(message: common_pb2.Envelope, has: bool, what: str) -> Envelope:
    """The kernel envelope of a required request field; BadInput if absent or malformed."""
    if not has:
        raise BadInput(f"{what} is required")
    try:
        return from_wire(message)
    except MalformedStatement as exc:
        raise BadInput(f"{what}: {exc}") from exc


def peek_field(envelope: Envelope, field: str) -> object:
    """One field of a not yet verified payload, for lookups; BadInput if it is not JSON."""
    try:
        return peek(envelope.payload, field)
    except MalformedStatement as exc:
        raise BadInput(str(exc)) from exc
