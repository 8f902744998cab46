"""Dial-out agents, seen from the controller: the streams they hold open, and their presence.

An agent in dial-out mode calls ``AgentReportService.Connect`` and keeps the stream open.
:class:`DialIn` remembers one :class:`Link` per connected agent; :meth:`DialIn.call`
sends an ExecuteRequest down it tagged with a fresh call id and waits for the answer
carrying that id back. Call ids belong to one link: an agent can only answer what was
sent to it, on the stream it was sent on, once. A frame that breaks these rules is
refused with a ``refused`` frame; the stream stays open. Bytes that are no AgentFrame at
all end that stream with INVALID_ARGUMENT (gRPC cannot read on past them).

A streaming call (``execute_stream``) is answered by ``part`` frames, handed on in
order, then by its response or status; a part for a call that is not streaming is
refused like any other malformed frame.

A streaming call holds at most ``STREAM_BUFFER`` bytes of parts not yet taken by its
consumer: the reader never waits for one call (others share the stream), so a call whose
consumer falls that far behind is cancelled on the agent and ends with RESOURCE_EXHAUSTED.

A call the controller gives up on (deadline, the engineer's call cancelled) is cancelled
on the agent with a ``cancel`` frame, as gRPC cancels a direct Execute. A call in flight
when its stream drops ends with UNAVAILABLE "agent offline" and is never re-sent: the
operation's sequence number would make a re-send a replay, so the engineer retries with
a new one.

Presence: every connected agent's ``last_seen`` is written when it connects and then every
``PRESENCE_INTERVAL`` seconds (one transaction for all of them), and once more when it goes,
so :func:`controller.presence.is_online` holds for dial-out agents as for direct ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
from google.protobuf.message import DecodeError
from sqlalchemy.engine import Connection

from controller.errors import PermissionDenied
from controller.logs import log_event
from controller.presence import PRESENCE_INTERVAL
from controller.relay import OFFLINE, OnPart, Relayed
from controller.store import Store, directory
from rmaint.v1 import agent_pb2
from rmaint.v1 import controller_pb2 as pb

_CODES = {code.value[0]: code for code in grpc.StatusCode if code != grpc.StatusCode.OK}
STREAM_BUFFER = 8 * 1024 * 1024  # bytes of one call's parts received, not yet handed on
OVERRUN = "the stream was cancelled: its output came faster than it was read"


class Link:
    """One open Connect stream of one agent: its outgoing frames and unanswered calls."""

    def __init__(self, agent_id: str, peer: str) -> None:
        self.agent_id = agent_id
        self.peer = peer
        self._outbox: asyncio.Queue[pb.ControllerFrame | None] = asyncio.Queue()
        self._pending: dict[int, asyncio.Future[Relayed]] = {}
        # Streaming calls: their parts, then their answer (removed once it came).
        self._streams: dict[int, asyncio.Queue[bytes | Relayed]] = {}
        self._buffered: dict[int, int] = {}  # bytes of parts queued, by streaming call
        self._overrun_ids: set[int] = set()  # cancelled for overrun: late parts dropped
        self._ids = itertools.count(1)
        self.open = True
        self.undecodable = False  # the agent sent bytes that are no AgentFrame

    async def call(self, request: agent_pb2.ExecuteRequest, timeout: float) -> Relayed:
        """Send ``request`` and wait for its answer; a status if none comes in ``timeout``."""
        if not self.open:
            return Relayed(None, grpc.StatusCode.UNAVAILABLE, OFFLINE)
        call_id = next(self._ids)
        answer: asyncio.Future[Relayed] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = answer
        self._outbox.put_nowait(pb.ControllerFrame(call_id=call_id, execute=request))
        try:
            return await asyncio.wait_for(answer, timeout)
        except TimeoutError:
            return Relayed(None, grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")
        finally:
            self._pending.pop(call_id, None)
            if self.open and (answer.cancelled() or not answer.done()):  # given up on
                self._outbox.put_nowait(pb.ControllerFrame(call_id=call_id,
                                                           cancel=pb.CallCancel()))

    async def call_stream(self, request: agent_pb2.ExecuteRequest, timeout: float,
                          on_part: OnPart) -> Relayed:
        """Send a streaming ``request``, hand its parts to ``on_part`` in order, and return
        its answer; cancelled on the agent if ``on_part`` raises or ``timeout`` passes."""
        if not self.open:
            return Relayed(None, grpc.StatusCode.UNAVAILABLE, OFFLINE)
        call_id = next(self._ids)
        items: asyncio.Queue[bytes | Relayed] = asyncio.Queue()
        self._streams[call_id] = items
        self._outbox.put_nowait(pb.ControllerFrame(call_id=call_id, execute_stream=request))
        answered = False
        try:
            async with asyncio.timeout(timeout):
                while not isinstance(item := await items.get(), Relayed):
                    self._buffered[call_id] -= len(item)
                    await on_part(item)
            answered = True
            return item
        except TimeoutError:
            return Relayed(None, grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")
        finally:
            self._streams.pop(call_id, None)
            self._buffered.pop(call_id, None)
            if self.open and not answered:  # given up on
                self._outbox.put_nowait(pb.ControllerFrame(call_id=call_id,
                                                           cancel=pb.CallCancel()))

    def _answer_stream(self, frame: pb.AgentFrame,
                       items: asyncio.Queue[bytes | Relayed]) -> pb.CallStatus | None:
        kind = frame.WhichOneof("answer")
        if kind == "part":
            held = self._buffered.get(frame.call_id, 0) + len(frame.part)
            if held > STREAM_BUFFER:
                self._overrun(frame.call_id, items)
            else:
                self._buffered[frame.call_id] = held
                items.put_nowait(frame.part)
        elif kind == "response":
            del self._streams[frame.call_id]
            items.put_nowait(Relayed(frame.response))
        elif kind == "status" and frame.status.code in _CODES:
            del self._streams[frame.call_id]
            items.put_nowait(Relayed(None, _CODES[frame.status.code], frame.status.message))
        else:
            problem = "no answer" if kind is None else f"status code {frame.status.code}"
            return _refusal(grpc.StatusCode.INVALID_ARGUMENT, f"malformed frame: {problem}",
                            self, frame, problem)
        return None

    def _overrun(self, call_id: int, items: asyncio.Queue[bytes | Relayed]) -> None:
        """End a streaming call whose consumer fell behind: cancel it on the agent; its
        caller gets the parts already queued, then RESOURCE_EXHAUSTED."""
        del self._streams[call_id]
        self._overrun_ids.add(call_id)
        items.put_nowait(Relayed(None, grpc.StatusCode.RESOURCE_EXHAUSTED, OVERRUN))
        self._outbox.put_nowait(pb.ControllerFrame(call_id=call_id, cancel=pb.CallCancel()))
        log_event("dialin.stream.overrun", logging.WARNING, agent_id=self.agent_id,
                  call_id=call_id, buffered=self._buffered.get(call_id, 0))

    def answer(self, frame: pb.AgentFrame) -> pb.CallStatus | None:
        """Resolve the call ``frame`` answers; the refusal to send back if it cannot."""
        if frame.call_id in self._overrun_ids:  # parts already in flight when it was cancelled
            if frame.WhichOneof("answer") != "part":
                self._overrun_ids.discard(frame.call_id)
            return None
        items = self._streams.get(frame.call_id)
        if items is not None:
            return self._answer_stream(frame, items)
        answer = self._pending.get(frame.call_id)
        if answer is None or answer.done():
            return _refusal(grpc.StatusCode.PERMISSION_DENIED, "permission denied",
                            self, frame, f"call id {frame.call_id} is not awaiting an answer")
        kind = frame.WhichOneof("answer")
        if kind == "part":
            return _refusal(grpc.StatusCode.INVALID_ARGUMENT, "malformed frame: a part "
                            "answers no streaming call", self, frame, "part for a unary call")
        if kind == "response":
            answer.set_result(Relayed(frame.response))
        elif kind == "status" and frame.status.code in _CODES:
            answer.set_result(Relayed(None, _CODES[frame.status.code], frame.status.message))
        else:
            problem = "no answer" if kind is None else f"status code {frame.status.code}"
            return _refusal(grpc.StatusCode.INVALID_ARGUMENT, f"malformed frame: {problem}",
                            self, frame, problem)
        return None

    def push(self, frame: pb.ControllerFrame) -> None:
        """Send a frame that answers no call (the agent's lock set)."""
        if self.open:
            self._outbox.put_nowait(frame)

    def refuse(self, call_id: int, status: pb.CallStatus) -> None:
        self._outbox.put_nowait(pb.ControllerFrame(call_id=call_id, refused=status))

    @property
    def idle(self) -> bool:
        """Whether no call waits for an answer."""
        return not self._pending and not self._streams

    async def outgoing(self) -> AsyncIterator[pb.ControllerFrame]:
        """The frames to write to the stream, until :meth:`close`."""
        while (frame := await self._outbox.get()) is not None:
            yield frame

    def close(self) -> None:
        """No more calls; those in flight end with UNAVAILABLE "agent offline"."""
        self.open = False
        self._outbox.put_nowait(None)
        for answer in self._pending.values():
            if not answer.done():
                answer.set_result(Relayed(None, grpc.StatusCode.UNAVAILABLE, OFFLINE))
        for items in self._streams.values():
            items.put_nowait(Relayed(None, grpc.StatusCode.UNAVAILABLE, OFFLINE))
        self._streams.clear()


def _refusal(code: grpc.StatusCode, message: str, link: Link, frame: pb.AgentFrame,
             reason: str) -> pb.CallStatus:
    log_event("dialin.frame_refused", logging.WARNING, agent_id=link.agent_id, peer=link.peer,
              call_id=frame.call_id, code=code.name, reason=reason)
    return pb.CallStatus(code=code.value[0], message=message)


class DialIn:
    """The connected dial-out agents of this controller process."""

    def __init__(self, store: Store, clock: Callable[[], float], *,
                 presence_interval: float = PRESENCE_INTERVAL) -> None:
        self._store = store
        self._clock = clock
        self._interval = presence_interval
        self._links: dict[str, Link] = {}
        self._seen: set[str] = set()  # connected or gone since the last presence write
        self._wake = asyncio.Event()
        self._presence: asyncio.Task[None] | None = None
        self._draining = False
        # The first frame of each stream (its lock set); raises PermissionDenied for an
        # agent that may not connect (controller.locks sets it).
        self.greeting: Callable[[str], Awaitable[pb.ControllerFrame | None]] | None = None

    def connected(self) -> list[str]:
        """Ids of the agents holding a stream now."""
        return sorted(self._links)

    async def call(self, agent_id: str, request: agent_pb2.ExecuteRequest,
                   timeout: float) -> Relayed | None:
        """Relay over the agent's stream; None if it holds none."""
        link = self._links.get(agent_id)
        return None if link is None else await link.call(request, timeout)

    async def call_stream(self, agent_id: str, request: agent_pb2.ExecuteRequest,
                          timeout: float, on_part: OnPart) -> Relayed | None:
        """Relay a streaming call over the agent's stream; None if it holds none."""
        link = self._links.get(agent_id)
        return None if link is None else await link.call_stream(request, timeout, on_part)

    async def serve(self, agent_id: str, frames: AsyncIterator[pb.AgentFrame],
                    context: grpc.aio.ServicerContext) -> AsyncIterator[pb.ControllerFrame]:
        """Hold one agent's Connect stream until either side ends it, yielding the frames
        to send; raises PermissionDenied if the certificate's agent is not enrolled."""
        if self._draining:  # held now, the stream would only delay the server's stop
            await context.abort(grpc.StatusCode.UNAVAILABLE, "controller stopping")
        await self._store.read(_enrolled, agent_id)
        first = await self.greeting(agent_id) if self.greeting is not None else None
        link = Link(agent_id, context.peer())
        self._attach(link)
        if first is not None:
            link.push(first)
        await context.send_initial_metadata(())  # tells the agent it is connected
        reader = asyncio.create_task(_read(link, frames))
        try:
            async for frame in link.outgoing():
                yield frame
        finally:
            self._detach(link)
            reader.cancel()
        if link.undecodable:  # gRPC cannot read past such bytes: end with a clear status
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "malformed frame: not a valid protobuf message")

    def send(self, agent_id: str, frame: pb.ControllerFrame) -> bool:
        """Push ``frame`` down the agent's stream; whether it holds one."""
        link = self._links.get(agent_id)
        if link is not None:
            link.push(frame)
        return link is not None

    def disconnect(self, agent_id: str) -> None:
        """End the agent's stream (frames already queued are sent first)."""
        link = self._links.get(agent_id)
        if link is not None:
            link.close()

    def _attach(self, link: Link) -> None:
        previous = self._links.get(link.agent_id)
        self._links[link.agent_id] = link
        if previous is not None:
            previous.close()  # its TCP connection is dead or about to be: the newer one wins
        self._mark(link.agent_id)
        log_event("agent.connected", agent_id=link.agent_id, peer=link.peer,
                  replaced=previous is not None)

    def _detach(self, link: Link) -> None:
        if self._links.get(link.agent_id) is link:
            del self._links[link.agent_id]
            self._mark(link.agent_id)
            log_event("agent.disconnected", agent_id=link.agent_id, peer=link.peer)
        link.close()

    def _mark(self, agent_id: str) -> None:
        self._seen.add(agent_id)
        self._wake.set()

    def start(self) -> None:
        """Start writing presence in the background."""
        self._presence = asyncio.create_task(self._write_presence(), name="dialin-presence")

    def drain(self) -> None:
        """The controller is stopping: refuse new streams, end those with no call in flight
        (the others end when the server stops, after its grace)."""
        self._draining = True
        for link in list(self._links.values()):
            if link.idle:
                link.close()

    async def stop(self) -> None:
        """Stop writing presence and end every call in flight (UNAVAILABLE)."""
        for link in list(self._links.values()):
            link.close()
        if self._presence is not None:
            self._presence.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._presence

    async def _write_presence(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            await asyncio.sleep(0.2)  # let a burst of connections share one transaction
            self._wake.clear()
            seen, self._seen = self._seen | set(self._links), set()
            try:
                await self._store.write(directory.touch_agents, sorted(seen), self._clock())
            except Exception:  # the store is down: presence waits, streams keep serving
                log_event("dialin.presence_failed", logging.WARNING, exc_info=True,
                          agents=len(seen))
                self._seen |= seen


MAX_REFUSALS = 64  # refused frames one stream may send; then it is closed (the agent redials)


async def _read(link: Link, frames: AsyncIterator[pb.AgentFrame]) -> None:
    """Take the agent's answers until its side ends, then close ``link``."""
    refused = 0
    try:
        async for frame in frames:
            refusal = link.answer(frame)
            if refusal is None:
                continue
            refused += 1
            if refused > MAX_REFUSALS:  # not a confused agent: one filling the log and queue
                log_event("dialin.closed", logging.WARNING, agent_id=link.agent_id,
                          peer=link.peer, reason=f"over {MAX_REFUSALS} frames refused")
                return
            link.refuse(frame.call_id, refusal)
    except DecodeError:
        link.undecodable = True
        log_event("dialin.frame_refused", logging.WARNING, agent_id=link.agent_id,
                  peer=link.peer, call_id=0, code=grpc.StatusCode.INVALID_ARGUMENT.name,
                  reason="not a valid protobuf message")
    except Exception as exc:  # the stream broke (reset, cancelled): the link ends
        log_event("dialin.read_failed", logging.INFO, agent_id=link.agent_id,
                  error=type(exc).__name__)
    finally:
        link.close()


def _enrolled(conn: Connection, agent_id: str) -> None:
    if directory.get_agent(conn, agent_id) is None:
        raise PermissionDenied(f"agent {agent_id} holds a certificate but is not enrolled")
