"""Dial-out mode: the agent connects out to the controller and is served operations there.

:class:`DialOut` opens ``AgentReportService.Connect`` over mutual TLS with the agent's
enrolled certificate (the controller's certificate is checked for its role, as the sync
loop does) and holds the stream open. Each ``execute`` frame runs through the same code as
``AgentService.Execute`` (``agent.server.execute``) and its result or status goes back
tagged with the frame's call id, so refusals look exactly as in direct mode. Several
operations may run at once; a ``cancel`` frame cancels one, as a cancelled Execute call
would, and it gets no answer. An ``execute_stream`` frame runs a streaming operation as
``AgentService.ExecuteStream`` does (``agent.server.execute_stream``): each output part
goes back as a ``part`` frame with the call id, in order, then the response or status.

A lost or refused connection is retried after a delay drawn with full jitter from an
exponential schedule (:func:`backoff_delay`: base 0.5 s, cap 30 s); a connection that was
established starts the schedule over. gRPC keepalive pings find a dead connection. An
answer whose stream is gone is dropped, never re-sent: the controller has already failed
that call, and the agent's log holds the attempt and its result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import grpc

from agent.rpc import INTERNAL_TEXT, failure_status
from pki.identity import Identity
from pki.tls import TlsFiles, channel_options
from rmaint.v1 import agent_pb2, controller_pb2_grpc
from rmaint.v1 import controller_pb2 as pb

_log = logging.getLogger("agent.dialout")

BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
PARTS_AHEAD = 4  # parts of one streaming call waiting to be sent
Execute = Callable[[agent_pb2.ExecuteRequest], Awaitable[agent_pb2.ExecuteResponse]]
ApplyLocks = Callable[[agent_pb2.LockSet, str], Awaitable[bool]]
ExecuteStream = Callable[[agent_pb2.ExecuteRequest], AsyncGenerator[agent_pb2.StreamPart, None]]
Sleep = Callable[[float], Awaitable[None]]
# Idle streams must survive NATs and firewalls, and a dead peer must be noticed.
_KEEPALIVE = {
    "grpc.keepalive_time_ms": 20_000,
    "grpc.keepalive_timeout_ms": 10_000,
    "grpc.keepalive_permit_without_calls": 1,
    "grpc.http2.max_pings_without_data": 0,
    "grpc.use_local_subchannel_pool": 1,  # one connection per agent, never shared
}


def backoff_delay(failures: int, rand: Callable[[], float], *, base: float = BACKOFF_BASE,
                  cap: float = BACKOFF_CAP) -> float:
    """Seconds to wait after ``failures`` failed attempts in a row (>= 1): full jitter,
    uniform in [0, min(cap, base * 2**(failures-1)))."""
    ceiling = min(cap, base * 2.0 ** min(failures - 1, 64))
    return rand() * ceiling


def dial_options(controller: Identity) -> list[tuple[str, Any]]:
    """Channel options: the controller's role check, message limits, keepalives."""
    options = dict(channel_options(controller))
    options.update(_KEEPALIVE)
    return list(options.items())


class DialOut:
    """Holds the agent's stream to the controller at ``controller`` until cancelled."""

    def __init__(self, *, controller: str, trust_domain: str, files: TlsFiles,
                 execute: Execute, execute_stream: ExecuteStream | None = None,
                 sleep: Sleep = asyncio.sleep,
                 rand: Callable[[], float] = random.random,
                 apply_locks: ApplyLocks | None = None) -> None:
        self._apply_locks = apply_locks  # the controller's lock set (agent.locks)
        self._address = controller
        self._server = Identity(trust_domain, "controller")
        self._files = files
        self._execute = execute
        self._execute_stream = execute_stream
        self._sleep = sleep
        self._rand = rand
        self._running: dict[int, asyncio.Task[None]] = {}  # call id -> its operation
        self.connected = asyncio.Event()
        self.connections = 0  # streams established so far

    async def run(self) -> None:
        """Connect, serve, reconnect with backoff; until cancelled (operations running
        then are cancelled too)."""
        failures = 0
        try:
            while True:
                failures = 1 if await self._session() else failures + 1
                await self._sleep(backoff_delay(failures, self._rand))
        finally:
            for task in list(self._running.values()):
                task.cancel()

    async def _session(self) -> bool:
        """One connection, served until it ends; whether it was established."""
        key, cert, ca = self._files.read()
        credentials = grpc.ssl_channel_credentials(ca, key, cert)
        outbox = _Outbox()
        async with grpc.aio.secure_channel(self._address, credentials,
                                           options=dial_options(self._server)) as channel:
            call = controller_pb2_grpc.AgentReportServiceStub(channel).Connect(_drain(outbox))
            try:
                await call.initial_metadata()  # the controller sends it once it admitted us
                if call.done():
                    return self._ended(await call.code(), established=False,
                                       detail=await call.details())
                self._up()
                await self._serve(call, outbox)
                return self._ended(await call.code(), established=True)
            except grpc.aio.AioRpcError as exc:
                return self._ended(exc.code(), established=self.connected.is_set(),
                                   detail=exc.details() or "")
            finally:
                self.connected.clear()
                outbox.close()
                call.cancel()

    def _up(self) -> None:
        self.connections += 1
        self.connected.set()
        _log.info("connected to the controller", extra={"fields": {
            "event": "dialout.connected", "controller": self._address}})

    def _ended(self, code: grpc.StatusCode, *, established: bool,
               detail: str = "") -> bool:
        level = logging.INFO if established else logging.WARNING
        _log.log(level, "controller connection ended", extra={"fields": {
            "event": "dialout.disconnected", "controller": self._address,
            "code": code.name, "detail": detail, "established": established}})
        return established

    async def _serve(self, call: Any, outbox: _Outbox) -> None:
        async for frame in call:
            body = frame.WhichOneof("body")
            if body == "execute" and frame.call_id not in self._running:
                self._start(frame.call_id, self._answer(frame.call_id, frame.execute, outbox))
            elif body == "execute_stream" and frame.call_id not in self._running:
                self._start(frame.call_id,
                            self._answer_stream(frame.call_id, frame.execute_stream, outbox))
            elif body == "cancel" and frame.call_id in self._running:
                self._running[frame.call_id].cancel()
            elif body == "locks" and self._apply_locks is not None:
                await self._apply_locks(frame.locks, "stream")
            elif body == "refused":
                _log.warning("the controller refused an answer", extra={"fields": {
                    "event": "dialout.refused", "call_id": frame.call_id,
                    "code": frame.refused.code, "message": frame.refused.message}})
            else:  # no body, a call id in use, or a cancel for a call that ended
                _log.warning("ignored a controller frame", extra={"fields": {
                    "event": "dialout.ignored", "call_id": frame.call_id, "body": body}})

    def _start(self, call_id: int, answer: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(answer)
        self._running[call_id] = task
        task.add_done_callback(lambda _: self._running.pop(call_id, None))

    async def _answer(self, call_id: int, request: agent_pb2.ExecuteRequest,
                      outbox: _Outbox) -> None:
        try:
            frame = pb.AgentFrame(call_id=call_id, response=await self._execute(request))
        except Exception as exc:
            code, text = failure_status(exc, "Execute")
            frame = pb.AgentFrame(call_id=call_id,
                                  status=pb.CallStatus(code=code.value[0], message=text))
        self._answered(frame, outbox)

    async def _answer_stream(self, call_id: int, request: agent_pb2.ExecuteRequest,
                             outbox: _Outbox) -> None:
        """A streaming call: a ``part`` frame per output part, then its response or status
        (as ExecuteStream ends); UNIMPLEMENTED when this agent serves no streaming calls."""
        frame = pb.AgentFrame(call_id=call_id, status=pb.CallStatus(  # replaced below
            code=grpc.StatusCode.INTERNAL.value[0], message=INTERNAL_TEXT))
        try:
            if self._execute_stream is None:
                raise _NotServed()
            async with contextlib.aclosing(self._execute_stream(request)) as parts:
                async for part in parts:
                    if part.WhichOneof("kind") == "done":
                        frame = pb.AgentFrame(call_id=call_id, response=part.done)
                        continue
                    outbox.put_nowait(pb.AgentFrame(call_id=call_id, part=part.data))
                    await outbox.room(PARTS_AHEAD)  # raises once the stream is gone
        except _Gone:
            _log.info("streaming call stopped: the stream to the controller is gone",
                      extra={"fields": {"event": "dialout.abandoned", "call_id": call_id}})
            return
        except _NotServed:
            frame = pb.AgentFrame(call_id=call_id, status=pb.CallStatus(
                code=grpc.StatusCode.UNIMPLEMENTED.value[0],
                message="streaming operations are not served"))
        except Exception as exc:
            code, text = failure_status(exc, "ExecuteStream")
            frame = pb.AgentFrame(call_id=call_id,
                                  status=pb.CallStatus(code=code.value[0], message=text))
        self._answered(frame, outbox)

    @staticmethod
    def _answered(frame: pb.AgentFrame, outbox: _Outbox) -> None:
        outbox.put_nowait(frame)  # a closed stream's outbox is never read: dropped, not re-sent
        _log.info("answered over the stream", extra={"fields": {
            "event": "dialout.answered", "call_id": frame.call_id,
            "answer": frame.WhichOneof("answer")}})


class _NotServed(Exception):
    """This agent was started without streaming operations."""


class _Gone(Exception):
    """The stream this outbox fed has ended."""


class _Outbox(asyncio.Queue[pb.AgentFrame | None]):
    """The frames to send on one stream. A streaming call waits for :meth:`room` after
    each part, so its parts leave at the pace the connection takes them (gRPC reads the
    outbox only as fast as HTTP/2 flow control allows) instead of piling up here."""

    def __init__(self) -> None:
        super().__init__()
        self._taken = asyncio.Event()
        self.closed = False

    def get_nowait(self) -> pb.AgentFrame | None:
        frame = super().get_nowait()
        self._taken.set()
        return frame

    def close(self) -> None:
        self.closed = True
        self.put_nowait(None)
        self._taken.set()

    async def room(self, ahead: int) -> None:
        """Return once at most ``ahead`` frames wait; _Gone once the stream has ended."""
        while not self.closed and self.qsize() > ahead:
            self._taken.clear()
            await self._taken.wait()
        if self.closed:
            raise _Gone()


async def _drain(outbox: _Outbox) -> AsyncIterator[pb.AgentFrame]:
    while (frame := await outbox.get()) is not None:
        yield frame


async def stop(task: asyncio.Task[None]) -> None:
    """Cancel a running :meth:`DialOut.run` and wait for it to end."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
