"""EngineerService.RunOperationStream: a streaming operation relayed part by part.

Recorded as RunOperation records (:mod:`controller.services._operations`): the session
event is committed "pending" before a byte goes to the agent and finished with the
agent's receipt. The agent's parts are passed on to the engineer as they arrive, at
most :data:`PARTS_AHEAD` waiting, so a slow engineer slows the agent instead of filling
the controller's memory.

A support bundle (``bundle.create``) is also kept: its parts go to an unnamed temporary
file, bounded by the controller's limit (:data:`BUNDLE_LIMIT`; over it, the call is
cancelled on the agent and ends FAILED_PRECONDITION). Once the agent's receipt verifies
and covers the result, and the result's ``stream.sha256`` and ``stream.bytes`` match what
arrived, the bundle is stored as a blob by its SHA-256 and attached to the case in the
transaction that finishes the event, whose detail names it by hash. A bundle that does
not match is not stored: the event says why and the engineer gets UNAVAILABLE. The parts
of other operations (``diag.watch``) are not kept: the receipt-signed summary holds their
SHA-256.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import tempfile
import time
from collections.abc import AsyncIterator
from typing import IO, Any

from sqlalchemy.engine import Connection

from controller.authz import Caller
from controller.errors import AgentFailed, FailedPrecondition
from controller.logs import log_event
from controller.relay import Outcome, Relayed
from controller.services import _common
from controller.services._common import Deps
from controller.services._operations import (
    _Attempt,
    _checked_receipt,
    _detail,
    _error_for,
    _finish,
    _record_attempt,
    _verified,
)
from controller.store import bundles, sessions
from permissions import Envelope, Operation
from rmaint.v1 import agent_pb2

BUNDLE_OPERATION = "bundle.create"
BUNDLE_LIMIT = 256 * 1024 * 1024  # bytes of one support bundle the controller takes
PARTS_AHEAD = 8  # parts waiting for the engineer


class _TooLarge(Exception):
    pass


class _Spool:
    """A bundle's bytes as they arrive: an unnamed temporary file, its size and SHA-256."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._file: IO[bytes] = tempfile.TemporaryFile()
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, part: bytes) -> None:
        if self.size + len(part) > self._limit:
            raise _TooLarge(f"the bundle is over the controller's limit of {self._limit} bytes")
        self._file.write(part)
        self._hash.update(part)
        self.size += len(part)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def read(self) -> bytes:
        self._file.seek(0)
        return self._file.read()

    def close(self) -> None:
        self._file.close()


async def run_operation_stream(deps: Deps, caller: Caller, request: agent_pb2.ExecuteRequest,
                               *, bundle_limit: int | None = None,
                               ) -> AsyncIterator[agent_pb2.StreamPart]:
    """Relay one engineer-signed streaming operation: its parts, then its answer
    (``bundle_limit``: bytes of a support bundle taken; default :data:`BUNDLE_LIMIT`)."""
    envelope = _common.envelope(request.operation, "operation")
    op = _verified(envelope, caller)
    attempt = await deps.store.write(_record_attempt, caller, op, envelope, deps.clock())
    started = time.monotonic()
    limit = BUNDLE_LIMIT if bundle_limit is None else bundle_limit
    spool = _Spool(limit) if op.operation == BUNDLE_OPERATION else None
    parts: asyncio.Queue[bytes] = asyncio.Queue(PARTS_AHEAD)

    async def on_part(data: bytes) -> None:
        if spool is not None:
            await asyncio.to_thread(spool.write, data)
        await parts.put(data)

    relay = asyncio.create_task(deps.relay.execute_stream(
        op.agent_id, attempt.agent_address, agent_pb2.ExecuteRequest(operation=request.operation),
        on_part))
    finished = False
    try:
        async for data in _drain(parts, relay):
            yield agent_pb2.StreamPart(data=data)
        try:
            relayed = await relay
        except _TooLarge as exc:
            finished = True
            await _finish(deps, attempt, Outcome.ERROR, str(exc), started, None)
            _logged(op, attempt, Outcome.ERROR, "", str(exc))
            raise FailedPrecondition(str(exc)) from exc
        finished = True
        response = await _finished(deps, attempt, envelope, op, relayed, spool, started)
        yield agent_pb2.StreamPart(done=response)
    finally:
        if spool is not None:
            spool.close()
        if not finished:  # the engineer went away (or the relay failed): stop the agent
            relay.cancel()
            with contextlib.suppress(BaseException):
                await relay
            await asyncio.shield(_finish(deps, attempt, Outcome.CANCELLED,
                                         "the engineer's call was cancelled", started, None))


async def _drain(parts: asyncio.Queue[bytes], relay: asyncio.Task[Relayed]) -> AsyncIterator[bytes]:
    """The parts as they come, until the relay ended and every part queued was taken."""
    while True:
        getter = asyncio.ensure_future(parts.get())
        try:
            await asyncio.wait({getter, relay}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            got = getter.done()
            if not got:
                getter.cancel()
        if not got:  # the relay ended: what it handed on is queued
            break
        yield getter.result()
    while not parts.empty():
        yield parts.get_nowait()


async def _finished(deps: Deps, attempt: _Attempt, envelope: Envelope, op: Operation,
                    relayed: Relayed, spool: _Spool | None,
                    started: float) -> agent_pb2.ExecuteResponse:
    """Record how the call ended (storing a matching bundle); the answer or its error."""
    receipt, note = _checked_receipt(relayed, attempt, envelope, op)
    detail = _detail(relayed, note)
    bundle: bundles.Bundle | None = None
    if spool is not None and relayed.response is not None:
        problem = note or _mismatch(relayed.response.result_json, spool)
        if problem:
            detail = "; ".join(filter(None, [detail, f"bundle not stored: {problem}"]))
        else:
            bundle = bundles.Bundle(
                case_id=op.case_id, sha256=spool.sha256, size=spool.size,
                session_id=op.session_id, event_id=attempt.event_id, agent_id=op.agent_id,
                created_at=deps.clock())
            detail = f"bundle sha256:{bundle.sha256} ({bundle.size} bytes)"
    elapsed_ms = (time.monotonic() - started) * 1000.0
    if bundle is None:
        await _finish(deps, attempt, relayed.outcome, detail, started, receipt)
    else:
        data = await asyncio.to_thread(spool.read) if spool is not None else b""
        await deps.store.write(_finish_with_bundle, attempt.recorded, relayed.outcome.value,
                               detail, elapsed_ms, receipt, bundle, data)
    _logged(op, attempt, relayed.outcome, relayed.code.name, detail)
    if relayed.response is None:
        raise _error_for(relayed, op.agent_id)
    if spool is not None and bundle is None:
        raise AgentFailed(f"agent {op.agent_id}: the bundle received does not match the "
                          "agent's receipt; it was not stored")
    return agent_pb2.ExecuteResponse(result_json=relayed.response.result_json,
                                     receipt=relayed.response.receipt,
                                     event_id=attempt.event_id)


def _mismatch(result_json: bytes, spool: _Spool) -> str:
    """What is wrong with the bundle received, measured against the signed result."""
    try:
        stream: Any = json.loads(result_json).get("stream")
        signed = (stream["sha256"], stream["bytes"])
    except (ValueError, AttributeError, KeyError, TypeError):
        return "the result names no stream hash"
    if signed != (spool.sha256, spool.size):
        return "its SHA-256 or size differs from the receipt-signed result"
    return ""


def _finish_with_bundle(conn: Connection, started: sessions.Recorded, outcome: str, detail: str,
                        duration_ms: float, receipt: Envelope | None, bundle: bundles.Bundle,
                        data: bytes) -> None:
    sessions.finish_event(conn, started, outcome=outcome, detail=detail,
                          duration_ms=duration_ms, receipt=receipt)
    bundles.attach(conn, bundle, data)


def _logged(op: Operation, attempt: _Attempt, outcome: Outcome, code: str, detail: str) -> None:
    log_event("operation.relayed", session_id=op.session_id, seq=op.seq,
              operation=op.operation, agent_id=op.agent_id, outcome=outcome.value,
              code=code, detail=detail, event_id=attempt.event_id, streamed=True)
