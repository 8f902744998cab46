"""Server method handlers guarded before anything is decoded, for both servers' authorization.

:func:`guarded` returns a method's handler with an admission check (``admit(context)``,
which aborts the call to refuse it) awaited first. Unary requests are decoded only after
admission: an unauthorized caller never makes the server parse anything, and undecodable
bytes become INVALID_ARGUMENT "malformed request" instead of an error naming internals.
``boundary(exc, context)``, when given, turns an exception of the behaviour into the call's
status (it must abort the call).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

Admit = Callable[[grpc.aio.ServicerContext], Awaitable[None]]
Boundary = Callable[[Exception, grpc.aio.ServicerContext], Awaitable[None]]
Behaviour = Callable[..., Any]
MALFORMED = "malformed request: not a valid protobuf message"

_KINDS = (
    ("unary_unary", grpc.unary_unary_rpc_method_handler),
    ("unary_stream", grpc.unary_stream_rpc_method_handler),
    ("stream_unary", grpc.stream_unary_rpc_method_handler),
    ("stream_stream", grpc.stream_stream_rpc_method_handler),
)


def guarded(handler: grpc.RpcMethodHandler, admit: Admit,
            boundary: Boundary | None = None) -> grpc.RpcMethodHandler:
    """``handler`` with ``admit`` awaited before its behaviour (see the module docstring)."""
    for kind, make in _KINDS:
        behaviour = getattr(handler, kind)
        if behaviour is None:
            continue
        unary = kind.startswith("unary_")
        decode = handler.request_deserializer if unary else None
        return make(_guard(behaviour, admit, decode, boundary),
                    request_deserializer=None if unary else handler.request_deserializer,
                    response_serializer=handler.response_serializer)
    raise TypeError("handler without behaviour")


def _guard(behaviour: Behaviour, admit: Admit, decode: Callable[[bytes], Any] | None,
           boundary: Boundary | None) -> Behaviour:
    async def admitted(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await admit(context)
        if decode is None:
            return request
        try:
            return decode(request)
        except DecodeError:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, MALFORMED)

    if inspect.isasyncgenfunction(behaviour):
        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            request = await admitted(request, context)
            try:
                async for response in behaviour(request, context):
                    yield response
            except Exception as exc:
                if boundary is None:
                    raise
                await boundary(exc, context)
        return stream

    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        request = await admitted(request, context)
        try:
            return await behaviour(request, context)
        except Exception as exc:
            if boundary is None:
                raise
            await boundary(exc, context)
    return call
