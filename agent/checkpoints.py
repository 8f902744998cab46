"""Signing the agent log's checkpoints on a schedule, in the log's own thread.

A checkpoint is signed when the log has grown, at most once per ``interval`` (one second:
under load, one signature a second covers every entry of that second), and once more when
the daemon stops. A checkpoint names no time, so an idle log has nothing new to sign.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from agent import ledger
from agent.errors import LogUnavailable
from agent.log import OperationLog
from agent.sqlite import to_the_end
from pki.identity import Identity
from tlog import NoteSigner

INTERVAL = 1.0
_log = logging.getLogger("agent.checkpoints")


def signer_for(home: Path, identity: Identity) -> tuple[NoteSigner, str]:
    """The agent's log signer (its key made on first use) and its log's origin."""
    origin = ledger.origin_of(identity.name, identity.trust_domain)
    return NoteSigner(origin, ledger.load_or_create_key(home)), origin


class Checkpointer:
    def __init__(self, log: OperationLog, signer: NoteSigner, origin: str, *,
                 clock: Callable[[], float] = time.time) -> None:
        self._log, self._signer, self._origin, self._clock = log, signer, origin, clock
        self._size = -1

    async def tick(self) -> ledger.Head | None:
        """Sign if the log grew since the last tick: the head signed, or None."""
        if self._size >= 0 and not await self._grown():
            return None
        head = await to_the_end(self._log.submit(self._log.checkpoint, self._signer,
                                                 self._origin, self._clock()))
        self._size = head.size
        return head

    async def _grown(self) -> bool:
        size = await to_the_end(self._log.submit(self._log.tree_size))
        return size > self._size

    async def run(self, interval: float = INTERVAL) -> None:
        while True:
            try:
                await self.tick()
            except LogUnavailable as exc:
                _log.error("cannot sign the log's checkpoint", extra={"fields": {
                    "error": str(exc)}})
            await asyncio.sleep(interval)


async def start_checkpoints(stack: contextlib.AsyncExitStack, *, home: Path,
                            identity: Identity, log: OperationLog,
                            clock: Callable[[], float]) -> Checkpointer:
    signer, origin = signer_for(home, identity)
    checkpointer = Checkpointer(log, signer, origin, clock=clock)
    task = asyncio.create_task(checkpointer.run(), name="rmagent-checkpoints")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(LogUnavailable):  # a last checkpoint covering everything
            await checkpointer.tick()

    stack.push_async_callback(stop)
    return checkpointer
