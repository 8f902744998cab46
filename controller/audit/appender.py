"""Group commit for events that have no row of their own (agent reports, blob references).

Callers ``await appender.append(event)``; one drain task takes every event queued so far,
appends them in one write transaction (:func:`controller.store.auditlog.append_many`: one
head update, one multi-row insert) and only then resolves each caller with its index. A
commit that fails fails every caller of that batch: none of them is acknowledged, so none
can be missing later. Events that describe a row are appended in that row's transaction
instead (see :mod:`controller.store.sessions`, :mod:`controller.store.requests`).
"""

from __future__ import annotations

import asyncio

from controller.audit.records import Event
from controller.store import Store, auditlog

MAX_BATCH = 5000


class Appender:
    """Appends events in batches; one per store. Start with :meth:`start`, end with :meth:`stop`."""

    def __init__(self, store: Store, *, max_batch: int = MAX_BATCH) -> None:
        self._store = store
        self._max_batch = max_batch
        self._queue: list[tuple[Event, asyncio.Future[int]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def append(self, event: Event) -> int:
        """The event's leaf index, once its commit is durable; raises what the commit raised."""
        if self._task is None:
            raise RuntimeError("the appender is not running")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.append((event, future))
        self._wake.set()
        return await future

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._drain(), name="rmaint-log-appender")

    async def stop(self) -> None:
        """Commit what is queued, then stop."""
        task, self._task = self._task, None
        if task is not None:
            self._stopping = True
            self._wake.set()
            await task

    async def _drain(self) -> None:
        while self._queue or not self._stopping:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch, self._queue = self._queue[:self._max_batch], self._queue[self._max_batch:]
            await self._commit(batch)

    async def _commit(self, batch: list[tuple[Event, asyncio.Future[int]]]) -> None:
        try:
            indices = await self._store.write(auditlog.append_many, [e for e, _ in batch])
        except Exception as exc:  # every caller learns that its event is not in the log
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), index in zip(batch, indices, strict=True):
            if not future.done():
                future.set_result(index)
