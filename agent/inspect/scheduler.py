"""The inspection schedule: run the customer's profile every interval, record, report.

Each run is standing consent under the ``inspect`` scope, by the agent itself (no engineer,
no session, no grant). As for every operation, the attempt is written to the agent's log
before anything runs, and its result after; if the attempt cannot be written the run is
skipped (and that is logged). The run's findings are then queued durably and delivered.

Time is a parameter: ``clock`` reads the time and ``sleep`` waits, so tests drive the
schedule with a fake clock and never wait.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from agent.diag.policy import DiagConfig
from agent.errors import AgentError
from agent.inspect.checks import DEFAULT_DEADLINE, ERROR, run_checks
from agent.inspect.profile import InspectProfile, to_toml
from agent.inspect.report import Reporter, Run
from agent.log import Attempt, OperationLog, Result
from agent.sqlite import to_the_end

_log = logging.getLogger("agent.inspect")
OPERATION = "inspect.run"
SCOPE = "inspect"
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Schedule:
    """When runs start: every ``interval`` seconds from the first, never two at once.

    A run that overruns its slot makes the next one start at once, and slots missed
    entirely are skipped rather than run back to back.
    """

    interval: float

    def next_start(self, previous: float, now: float) -> float:
        return max(previous + self.interval, now)


class Inspector:
    """Runs ``profile`` on its schedule; one instance per daemon."""

    def __init__(self, *, profile: InspectProfile, diag: DiagConfig, log: OperationLog,
                 reporter: Reporter, clock: Callable[[], float] = time.time,
                 sleep: Sleep = asyncio.sleep, deadline: float = DEFAULT_DEADLINE) -> None:
        self._profile = profile
        self._diag = diag
        self._log = log
        self._reporter = reporter
        self._clock = clock
        self._sleep = sleep
        self._deadline = min(deadline, profile.interval_seconds)
        self._params = json.dumps({"scope": SCOPE, "profile": to_toml(profile)},
                                  sort_keys=True)
        self.runs = 0

    async def run(self) -> None:
        """Inspect on schedule until cancelled."""
        schedule = Schedule(self._profile.interval_seconds)
        start = self._clock()
        while True:
            await self.run_once()
            start = schedule.next_start(start, self._clock())
            await self._sleep(max(0.0, start - self._clock()))

    async def run_once(self) -> Run | None:
        """One run now: record, check, record, queue, deliver; None if it was skipped."""
        started = self._clock()
        attempt_id = await self._record_attempt(started)
        if attempt_id is None:
            return None
        outcome = await run_checks(self._profile, self._diag, deadline=self._deadline,
                                   clock_offset=lambda: self._reporter.clock_offset)
        finished = self._clock()
        run = Run(Run.new_id(), started, finished, outcome.completed, outcome.findings)
        await self._record_result(attempt_id, run)
        self.runs += 1
        try:
            await self._reporter.queue(run)
        except AgentError as exc:
            _log.error("inspection run not queued", extra={"fields": {
                "run_id": run.run_id, "error": str(exc)}})
            return run
        await self._reporter.deliver()
        return run

    async def _record_attempt(self, now: float) -> int | None:
        attempt = Attempt(at=now, outcome="allowed", reason="",
                          detail="standing consent: [inspect] in agent.toml",
                          operation_digest=hashlib.sha256(self._params.encode()).hexdigest(),
                          envelope=b"", operation=OPERATION, params_json=self._params)
        try:
            return await to_the_end(self._log.submit(self._log.record_attempt, attempt))
        except AgentError as exc:
            _log.error("inspection run skipped: the agent log cannot be written",
                       extra={"fields": {"error": str(exc)}})
            return None

    async def _record_result(self, attempt_id: int, run: Run) -> None:
        errors = [f.key for f in run.findings if f.severity == ERROR]
        body = run.to_json()
        result = Result(attempt_id=attempt_id, at=run.finished_at,
                        outcome="error" if errors else "ok",
                        detail=f"{run.run_id}: {len(run.findings)} finding(s)"
                        + (f", failed: {', '.join(errors)}" if errors else ""),
                        result_digest=hashlib.sha256(body.encode()).hexdigest(),
                        duration_ms=round((run.finished_at - run.started_at) * 1000, 3))
        try:
            await to_the_end(self._log.submit(self._log.record_result, result))
        except AgentError as exc:
            _log.error("inspection result not recorded", extra={"fields": {
                "run_id": run.run_id, "error": str(exc)}})
