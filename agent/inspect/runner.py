"""Starting the inspection inside the daemon, when the customer enabled it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from agent.config import AgentConfig
from agent.inspect.report import Reporter, ReportQueue
from agent.inspect.scheduler import Inspector
from agent.log import OperationLog
from pki.tls import TlsFiles

OUTBOX_NAME = "inspect-outbox.db"
_log = logging.getLogger("agent.inspect")


async def start_inspection(stack: contextlib.AsyncExitStack, *, home: Path,
                           config: AgentConfig, log: OperationLog, files: TlsFiles,
                           clock: Callable[[], float] = time.time) -> Inspector | None:
    """Run the profile in the background until ``stack`` closes; None when not enabled."""
    if not config.inspect.enabled:
        return None
    queue = ReportQueue(home / OUTBOX_NAME)
    stack.callback(queue.close)
    reporter = Reporter(queue, controller=config.controller, trust_domain=config.trust_domain,
                        files=files, clock=clock)
    stack.push_async_callback(reporter.close)
    inspector = Inspector(profile=config.inspect, diag=config.diag, log=log, reporter=reporter,
                          clock=clock)
    task = asyncio.create_task(inspector.run(), name="rmagent-inspect")
    stack.push_async_callback(_cancel, task)
    _log.info("inspection enabled", extra={"fields": {
        "interval_seconds": config.inspect.interval_seconds}})
    return inspector


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
