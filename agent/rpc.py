"""The gRPC boundary: agent errors become statuses here, once, through errors.STATUS_TABLE."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
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


def translated(method: Handler[S, Q, R]) -> Handler[S, Q, R]:
    """Run ``method``; abort the call with the table's status for any AgentError."""
    @functools.wraps(method)
    async def handler(self: S, request: Q, context: grpc.aio.ServicerContext) -> R:
        try:
            return await method(self, request, context)
        except AgentError as exc:
            code, text = status_of(exc)
            fields: dict[str, Any] = {"method": method.__name__, "code": code.name,
                                      "error": str(exc)}
            if isinstance(exc, Refused):
                fields.update(reason=exc.reason, detail=exc.detail)
            _log.info("call failed", extra={"fields": fields})
            await context.abort(code, text)
            raise AssertionError("context.abort returned") from exc
    return handler


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
