"""The shells running now: what the customer lists, watches and ends.

Each :class:`LiveShell` has an ``ended`` future; whoever ends it (the customer, a revoke,
the idle or duration limit) sets the reason there, and the shell's stream
(:mod:`agent.shell.service`) hangs the shell up and reports that reason. Watchers get
every output chunk through a bounded queue; a watcher too slow to keep up is dropped
rather than slowing the engineer's shell.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from agent.errors import NotFound
from agent.shell.tickets import Binding

WATCH_QUEUE = 256  # chunks a watcher may lag behind before it is dropped
_END = b""


@dataclass
class LiveShell:
    """One running shell; ``last_activity`` is on the agent's clock."""

    shell_id: str
    binding: Binding
    user: str
    started_at: float
    last_activity: float
    ended: asyncio.Future[str] = field(default_factory=lambda: asyncio.get_running_loop()
                                       .create_future())
    watchers: set[asyncio.Queue[bytes]] = field(default_factory=set)

    def end(self, reason: str) -> None:
        """Ask the shell to end with ``reason``; the first reason wins."""
        if not self.ended.done():
            self.ended.set_result(reason)

    def output(self, data: bytes, now: float) -> None:
        self.last_activity = now
        for queue in list(self.watchers):
            try:
                queue.put_nowait(data)
            except asyncio.QueueFull:
                self.watchers.discard(queue)
                _close(queue)  # the watcher's stream ends


def _close(queue: asyncio.Queue[bytes]) -> None:
    while True:
        try:
            queue.put_nowait(_END)
            return
        except asyncio.QueueFull:
            queue.get_nowait()


class LiveShells:
    """The registry; ``clock`` is the agent's time."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._shells: dict[str, LiveShell] = {}

    @staticmethod
    def new_id() -> str:
        return "sh-" + secrets.token_hex(6)

    def add(self, shell_id: str, binding: Binding, user: str) -> LiveShell:
        now = self._clock()
        shell = LiveShell(shell_id, binding, user, now, now)
        self._shells[shell.shell_id] = shell
        return shell

    def remove(self, shell: LiveShell) -> None:
        self._shells.pop(shell.shell_id, None)
        for queue in shell.watchers:
            _close(queue)
        shell.watchers.clear()

    def list(self) -> list[LiveShell]:
        return sorted(self._shells.values(), key=lambda s: s.started_at)

    def get(self, shell_id: str) -> LiveShell:
        shell = self._shells.get(shell_id)
        if shell is None:
            raise NotFound(f"no live shell {shell_id}")
        return shell

    def kill(self, shell_id: str) -> LiveShell:
        shell = self.get(shell_id)
        shell.end("killed")
        return shell

    def end_grant(self, grant_id: str) -> int:
        """End every shell under ``grant_id`` (its revocation); how many there were."""
        hit = [s for s in self._shells.values() if s.binding.grant_id == grant_id]
        for shell in hit:
            shell.end("revoked")
        return len(hit)

    async def watch(self, shell_id: str) -> AsyncIterator[bytes]:
        """The output of ``shell_id`` from now until it ends (or the watcher lags)."""
        shell = self.get(shell_id)
        queue: asyncio.Queue[bytes] = asyncio.Queue(WATCH_QUEUE)
        shell.watchers.add(queue)
        try:
            while (chunk := await queue.get()) != _END:
                yield chunk
        finally:
            shell.watchers.discard(queue)
