"""The background task that signs checkpoints.

Every ``interval`` (1 s) it signs a checkpoint if the log grew since the last one, so under
load at most one checkpoint a second covers everything appended, and a session's "closed"
record is signed within a second of it. When nothing was appended it signs nothing new, but
every ``idle_interval`` (60 s) it rewrites the kept checkpoint file from the store, so the
file and the store agree again after, say, a restore of the file alone. On stop it signs
what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable
from pathlib import Path

import tlog
from controller.audit.checkpoints import check_not_rolled_back, keep, read_kept, sign_checkpoint
from controller.audit.keys import KEY_FILE, create_log_key, load_log_key
from controller.errors import ControllerError
from controller.logs import log_event
from controller.store import Store, auditlog
from controller.store.auditlog import StoredCheckpoint

INTERVAL = 1.0
IDLE_INTERVAL = 60.0
# The log signer of each open store, for the services that cosign with it (witnessing).
_SIGNERS: weakref.WeakKeyDictionary[Store, tlog.NoteSigner] = weakref.WeakKeyDictionary()


def log_signer(store: Store) -> tlog.NoteSigner | None:
    """The log key :func:`start_log` loaded for ``store``; None before it ran."""
    return _SIGNERS.get(store)


class Checkpointer:
    """Signs the controller's log from :meth:`start` until :meth:`stop`."""

    def __init__(self, store: Store, signer: tlog.NoteSigner, home: Path,
                 clock: Callable[[], float], *, interval: float = INTERVAL,
                 idle_interval: float = IDLE_INTERVAL) -> None:
        self._store, self._signer, self._home, self._clock = store, signer, home, clock
        self._interval, self._idle_interval = interval, idle_interval
        self._last_kept = clock()
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @property
    def key(self) -> tlog.NoteVerifier:
        """The log's public key."""
        return self._signer.verifier

    async def checkpoint(self) -> StoredCheckpoint | None:
        """Sign now if the log grew; the new checkpoint, or None."""
        signed = await self._store.write(sign_checkpoint, self._signer, self._clock())
        if signed is not None:
            await self._keep(signed)
            log_event("audit.checkpoint", size=signed.size, root=signed.root_hash.hex())
        elif self._clock() - self._last_kept >= self._idle_interval:
            latest = await self._store.read(auditlog.latest_checkpoint)
            if latest is not None:
                await self._keep(latest)
        return signed

    async def _keep(self, checkpoint: StoredCheckpoint) -> None:
        await asyncio.to_thread(keep, self._home, checkpoint)
        self._last_kept = self._clock()

    def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._loop(), name="rmaint-log-checkpoints")

    async def stop(self) -> None:
        """Stop the loop, then sign whatever was appended since the last checkpoint."""
        task, self._task = self._task, None
        if task is not None:
            self._stopping.set()
            await task
        with contextlib.suppress(ControllerError):
            await self.checkpoint()

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.checkpoint()
            except ControllerError as exc:
                log_event("audit.checkpoint_failed", logging.WARNING, reason=str(exc))
            except Exception:
                log_event("audit.checkpoint_crashed", logging.ERROR, exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)


async def start_log(store: Store, home: Path, trust_domain: str,
                    clock: Callable[[], float]) -> Checkpointer:
    """Load (or, for a deployment that predates it, create) the log key, refuse a rolled-back
    log (LogRolledBack), sign what is unsigned, and start the checkpointer."""
    signer = await asyncio.to_thread(_log_key, home, trust_domain)
    kept = await asyncio.to_thread(read_kept, home)
    size = await store.read(check_not_rolled_back, signer.verifier, kept)
    log_event("audit.log_opened", size=size, key=signer.verifier.vkey())
    checkpointer = Checkpointer(store, signer, home, clock)
    _SIGNERS[store] = signer
    await checkpointer.checkpoint()
    checkpointer.start()
    return checkpointer


def _log_key(home: Path, trust_domain: str) -> tlog.NoteSigner:
    signer = load_log_key(home, trust_domain)
    if signer is None:
        signer = create_log_key(home, trust_domain)
        log_event("audit.log_key_created", logging.WARNING, path=str(home / KEY_FILE),
                  key=signer.verifier.vkey(),
                  note="this deployment had no log key; auditors must pin the new log.vkey")
    return signer
