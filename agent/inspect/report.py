"""The durable queue of inspection runs and their delivery to the controller.

A run is queued (fsynced, in ``<home>/inspect-outbox.db``) before delivery is tried and
removed only once the controller acknowledged it, so a controller that is down loses
nothing: runs wait, oldest first, and go out when it answers again. The controller
stores a run once by its id, so a run resent after a lost acknowledgement counts once.
Each acknowledgement carries the controller's time, from which the clock check reads
the agent's offset.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc

from agent.errors import StateUnavailable
from agent.inspect.checks import Finding
from agent.sqlite import Database, to_the_end
from pki.identity import Identity
from pki.tls import TlsFiles, secure_channel
from rmaint.v1 import controller_pb2 as pb
from rmaint.v1 import controller_pb2_grpc

_log = logging.getLogger("agent.inspect")
MAX_QUEUED = 10_000  # a controller gone for weeks: keep the newest runs
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL, queued_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0
);
"""


@dataclass(frozen=True)
class Run:
    """One finished inspection run, as queued and reported."""

    run_id: str
    started_at: float
    finished_at: float
    completed: tuple[str, ...]
    findings: tuple[Finding, ...]

    @staticmethod
    def new_id() -> str:
        return f"I-{secrets.token_hex(12)}"

    def to_json(self) -> str:
        return json.dumps({"run_id": self.run_id, "started_at": self.started_at,
                           "finished_at": self.finished_at, "completed": list(self.completed),
                           "findings": [f.to_json() for f in self.findings]})

    @classmethod
    def from_json(cls, text: str) -> Run:
        data = json.loads(text)
        return cls(data["run_id"], data["started_at"], data["finished_at"],
                   tuple(data["completed"]), tuple(Finding.from_json(f) for f in data["findings"]))

    def to_wire(self) -> pb.InspectionRun:
        return pb.InspectionRun(
            run_id=self.run_id, started_at=self.started_at, finished_at=self.finished_at,
            completed=self.completed,
            findings=[pb.InspectionFinding(key=f.key, severity=f.severity, message=f.message,
                                           value=f.value, threshold=f.threshold)
                      for f in self.findings])


class ReportQueue:
    """Runs not yet acknowledged by the controller, in a database of their own."""

    def __init__(self, path: Path) -> None:
        self._db = Database(path, _SCHEMA, error=StateUnavailable)

    def add(self, run: Run, now: float) -> None:
        with self._db.transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO runs (run_id, body, queued_at) VALUES (?, ?, ?)",
                         (run.run_id, run.to_json(), now))
            conn.execute("DELETE FROM runs WHERE id <= (SELECT MAX(id) FROM runs) - ?",
                         (MAX_QUEUED,))

    def pending(self, limit: int = 100) -> list[tuple[int, Run]]:
        rows = self._db.query("SELECT id, body FROM runs ORDER BY id LIMIT ?", (limit,))
        return [(row[0], Run.from_json(row[1])) for row in rows]

    def remove(self, item_id: int) -> None:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM runs WHERE id = ?", (item_id,))

    def count(self) -> int:
        return int(self._db.query("SELECT COUNT(*) FROM runs")[0][0])

    def submit(self, call: Callable[..., object], *args: object) -> asyncio.Future[object]:
        return self._db.submit(call, *args)

    def close(self) -> None:
        self._db.close()


class Reporter:
    """Delivers the queue to the controller at ``controller`` as the agent in ``files``."""

    def __init__(self, queue: ReportQueue, *, controller: str, trust_domain: str,
                 files: TlsFiles, clock: Callable[[], float] = time.time,
                 rpc_timeout: float = 5.0) -> None:
        self._queue = queue
        self._controller = controller
        self._server = Identity(trust_domain, "controller")
        self._files = files
        self._clock = clock
        self._timeout = rpc_timeout
        self._channel: grpc.aio.Channel | None = None
        self._lock = asyncio.Lock()
        self.clock_offset: float | None = None
        self.last_error = ""

    async def queue(self, run: Run) -> None:
        """Queue ``run`` durably (StateUnavailable if it cannot be written)."""
        await to_the_end(self._queue.submit(self._queue.add, run, self._clock()))

    async def deliver(self) -> int:
        """Send queued runs, oldest first, until the queue is empty or the controller fails;
        the number delivered."""
        if not self._controller:
            return 0
        async with self._lock:
            stub = controller_pb2_grpc.AgentReportServiceStub(self._open())
            sent = 0
            try:
                for item_id, run in await asyncio.to_thread(self._queue.pending):
                    await self._send(stub, run)
                    await to_the_end(self._queue.submit(self._queue.remove, item_id))
                    sent += 1
            except grpc.aio.AioRpcError as exc:
                self._note(f"{exc.code().name.lower()}: {exc.details()}")
                # Runs are minutes apart: the next one dials afresh instead of waiting
                # out the channel's reconnect backoff.
                await self.close()
                return sent
            self._note("")
            return sent

    async def _send(self, stub: controller_pb2_grpc.AgentReportServiceStub, run: Run) -> None:
        sent_at = self._clock()
        reply = await stub.ReportInspection(pb.ReportInspectionRequest(run=run.to_wire()),
                                            timeout=self._timeout)
        received_at = self._clock()
        # The controller read its clock somewhere in between: assume half way.
        self.clock_offset = (sent_at + received_at) / 2 - reply.server_time

    def _note(self, error: str) -> None:
        if error and error != self.last_error:
            _log.warning("inspection report not delivered", extra={"fields": {
                "controller": self._controller, "error": error}})
        self.last_error = error

    def _open(self) -> grpc.aio.Channel:
        if self._channel is None:
            self._channel = secure_channel(self._controller, self._files, self._server)
        return self._channel

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
