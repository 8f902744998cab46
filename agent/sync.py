"""The agent's loop with the controller: heartbeat, fetch requests, report consent.

Every round (each ``interval`` seconds, and on demand) sends a Heartbeat with the
agent's address and pinned approver keys, fetches access requests and keeps those
signed by the engineer and meant for this agent, then delivers the outbox of consent
decisions, and last witnesses the logs with the controller when due (:mod:`agent.witness`).
An unreachable controller is logged and retried with backoff and jitter;
it never affects operations, which the agent decides alone.

A request signed by a key other than those the customer accepted for its engineer name
is kept like any other (the customer sees it flagged) and logged as a warning; nothing
received here changes the customer's pinned engineer keys.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TypeAlias

import grpc

from agent.errors import AgentError
from agent.inspect.inventory import inventory
from agent.state import StateStore, key_changed
from agent.trust import PinnedTrust
from agent.witness import Progress, Witness, WitnessFailed
from permissions import Envelope, PermissionsError, verify_access_request
from pki.identity import Identity
from pki.tls import TlsFiles, secure_channel
from rmaint.envelopes import from_wire, to_wire
from rmaint.v1 import common_pb2, controller_pb2, controller_pb2_grpc

INTERVAL = 5.0  # seconds between rounds; decisions and `rmagent requests` sync at once
_log = logging.getLogger("agent.sync")
NO_CONTROLLER = "no controller address is configured"
Stub: TypeAlias = controller_pb2_grpc.AgentReportServiceStub
# Codes after which the controller may answer differently later: stop the round.
_TRANSIENT = frozenset({
    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.RESOURCE_EXHAUSTED,
})

# Codes that say the controller cannot be talked to at all this round.
_UNREACHABLE = frozenset({
    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED,
})


class SyncLoop:
    """Talks to the controller at ``controller`` as the agent identity in ``files``."""

    def __init__(self, *, controller: str, trust_domain: str, files: TlsFiles,
                 state: StateStore, trust: PinnedTrust, address: str,
                 clock: Callable[[], float] = time.time, interval: float = INTERVAL,
                 max_backoff: float = 30.0, rpc_timeout: float = 5.0,
                 witness: Witness | None = None) -> None:
        self._controller = controller
        self._server = Identity(trust_domain, "controller")
        self._files = files
        self._state = state
        self._trust = trust
        self._address = address
        self._clock = clock
        self._interval = interval
        self._max_backoff = max_backoff
        self._timeout = rpc_timeout
        self._lock = asyncio.Lock()
        self._channel: grpc.aio.Channel | None = None
        self._witness = witness  # mutual witnessing of the logs, last in each round
        self.last_error = ""

    async def run(self) -> None:
        """Sync until cancelled."""
        failures = 0
        while True:
            error = await self.sync_now()
            failures = failures + 1 if error else 0
            await asyncio.sleep(self._delay(failures))

    async def sync_now(self) -> str:
        """One full round now; "" on success, else why the controller could not be used."""
        async with self._lock:
            return self._note(*await self._attempt(self._round))

    async def witness_now(self) -> tuple[Progress | None, str]:
        """One witnessing round now, due or not: what it achieved and "" on success, else
        None and why it failed."""
        witness = self._witness
        if witness is None:
            return None, "witnessing is off"
        done: list[Progress] = []

        async def work(stub: Stub) -> None:
            done.append(await witness.round(stub, self._timeout))

        async with self._lock:
            error = self._note(*await self._attempt(work))
        return (None if error or not done else done[0]), error

    async def report(self, envelope: Envelope) -> bool:
        """Deliver the outbox now; whether ``envelope`` has been acknowledged."""
        async with self._lock:
            self._note(*await self._attempt(self._heartbeat_and_deliver))
        return await asyncio.to_thread(self._state.is_reported, envelope)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    def _delay(self, failures: int) -> float:
        if failures == 0:
            return self._interval
        ceiling = min(self._max_backoff, self._interval * 2 ** min(failures, 10))
        return float(ceiling * (0.5 + secrets.randbelow(500) / 1000))  # jitter: 50..100 %

    def _note(self, error: str, grpc_said: str = "") -> str:
        """Remember ``error`` (empty: none), logging changes with what gRPC said."""
        if error and error != self.last_error:
            _log.warning("controller sync failed", extra={"fields": {
                "controller": self._controller, "error": error, "grpc": grpc_said}})
        elif not error and self.last_error:
            _log.info("controller reachable again", extra={"fields": {
                "controller": self._controller}})
        self.last_error = error
        return error

    async def _attempt(self, work: Callable[[Stub], Awaitable[None]]) -> tuple[str, str]:
        """What went wrong, as the customer reads it (empty: nothing), and what gRPC said."""
        if not self._controller:
            return NO_CONTROLLER, ""
        stub = controller_pb2_grpc.AgentReportServiceStub(self._open())
        try:
            await work(stub)
        except grpc.aio.AioRpcError as exc:
            # The log keeps gRPC's words: a refused port, a name that does not resolve, a
            # handshake the CA pin refused all read "unreachable" to the customer.
            return _failure(self._controller, exc), f"{exc.code().name}: {exc.details()}"
        except AgentError as exc:
            return f"local state: {exc}", ""
        return "", ""

    def _open(self) -> grpc.aio.Channel:
        if self._channel is None:
            self._channel = secure_channel(self._controller, self._files, self._server)
        return self._channel

    async def _round(self, stub: Stub) -> None:
        await self._heartbeat(stub)
        refused: grpc.aio.AioRpcError | None = None
        try:
            await self._fetch(stub)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _UNREACHABLE:
                raise  # the controller is not there: the rest would fail too
            refused = exc  # the decisions kept here still go, and witnessing still runs
        await self._deliver(stub)
        if self._witness is not None and await self._witness.due():
            await self._witness_round(self._witness, stub)
        if refused is not None:
            raise refused

    async def _witness_round(self, witness: Witness, stub: Stub) -> None:
        """A refused exchange is logged (on both sides) and retried next round; it does not
        hold up the rest of the sync."""
        try:
            await witness.round(stub, self._timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _TRANSIENT:
                raise
            _log.error("witnessing refused by the controller", extra={"fields": {
                "code": exc.code().name, "detail": exc.details()}})
        except WitnessFailed:
            pass  # logged where it was found

    async def _heartbeat_and_deliver(self, stub: Stub) -> None:
        # The controller checks decisions against the keys the last heartbeat reported.
        await self._heartbeat(stub)
        await self._deliver(stub)

    async def _heartbeat(self, stub: Stub) -> None:
        approvers = self._trust.approvers()
        await stub.Heartbeat(controller_pb2.HeartbeatRequest(
            address=self._address, approver_keys={a.key_id: a.public_key for a in approvers},
            approver_names={a.key_id: a.name for a in approvers}, inventory=inventory()),
            timeout=self._timeout)

    async def _fetch(self, stub: Stub) -> None:
        reply = await stub.FetchRequests(controller_pb2.FetchRequestsRequest(),
                                         timeout=self._timeout)
        for message in reply.requests:
            await self._accept(message)

    async def _accept(self, message: common_pb2.Envelope) -> None:
        try:
            envelope = from_wire(message)
            request = verify_access_request(envelope, new=True)
        except PermissionsError as exc:
            _log.warning("access request ignored", extra={"fields": {"reason": str(exc)}})
            return
        if request.agent_id != self._trust.agent_id:
            _log.warning("access request for another agent ignored", extra={"fields": {
                "request_id": request.request_id, "agent_id": request.agent_id}})
            return
        if not await asyncio.to_thread(self._state.add_request, envelope, request,
                                       self._clock()):
            return
        _log.info("access request received", extra={"fields": {
            "request_id": request.request_id, "case_id": request.case_id,
            "engineer": request.engineer, "scopes": list(request.scopes)}})
        pinned = await asyncio.to_thread(self._state.engineer_keys, request.engineer)
        if key_changed(request, pinned):
            _log.warning("access request signed by a key not pinned for its engineer",
                         extra={"fields": {
                             "request_id": request.request_id, "engineer": request.engineer,
                             "key_id": request.engineer_key_id,
                             "pinned": [k.key_id for k in pinned]}})

    async def _deliver(self, stub: Stub) -> None:
        for item in await asyncio.to_thread(self._state.pending_reports):
            try:
                await stub.ReportConsent(controller_pb2.ReportConsentRequest(
                    decision=to_wire(item.envelope)), timeout=self._timeout)
            except grpc.aio.AioRpcError as exc:
                await asyncio.to_thread(self._state.note_report_failure, item.id,
                                        f"{exc.code().name}: {exc.details()}")
                if exc.code() in _TRANSIENT:
                    raise
                # Refused on its merits: keep it queued, but let later decisions through.
                _log.warning("consent report refused", extra={"fields": {
                    "kind": item.kind, "code": exc.code().name, "detail": exc.details()}})
                continue
            await asyncio.to_thread(self._state.mark_reported, item.id, self._clock())
            _log.info("consent reported", extra={"fields": {"kind": item.kind}})


# How a failed call reads to the customer (the log line also has gRPC's code and details).
_FAILURES = {
    grpc.StatusCode.UNAVAILABLE: "is unreachable",
    grpc.StatusCode.DEADLINE_EXCEEDED: "did not answer in time",
    grpc.StatusCode.UNAUTHENTICATED: "refused this agent's certificate",
    grpc.StatusCode.PERMISSION_DENIED: "refused this agent",
}


def _failure(controller: str, exc: grpc.aio.AioRpcError) -> str:
    said = _FAILURES.get(exc.code())
    if said is not None:
        return f"controller {controller} {said}"
    return f"controller {controller}: {exc.code().name.lower()}: {exc.details()}"
