"""The controller's locks as the agent holds them: applied at once, kept across restarts.

The controller sends its full lock set for this agent with a version that only grows:
pushed (``AgentService.ApplyLocks`` in direct mode, a ``locks`` frame on the dial-out
stream) and pulled (``AgentReportService.FetchLocks`` every :data:`PULL_INTERVAL` seconds,
so a set pushed while the agent was unreachable still arrives). :class:`LockKeeper`
applies a newer set to the dispatcher first (refusing what it covers, ending what runs
under it), then writes it to ``<home>/locks.json`` (0600, atomically), which it reads at
start. An older or equal version of the same epoch changes nothing.

Versions are compared within the controller store's *epoch* (a random id the controller
draws again whenever it starts): a set from another epoch is taken whatever its version,
so a store restored from a backup (its counter gone back) is still obeyed.

Locks only restrict: the dispatcher still decides every operation by the customer's
grant; a lock can only turn an allowed operation into a refusal. A locks file that cannot
be read at start fails closed: every operation is refused ("locks-unknown", a lock on
everything that only this agent makes) until the controller's set arrives.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import grpc

from permissions.locks import EVERYTHING, BadLockTarget, Lock, parse_target
from pki.files import write_private
from pki.identity import Identity
from pki.tls import TlsFiles, secure_channel
from rmaint.v1 import agent_pb2, controller_pb2, controller_pb2_grpc

LOCKS_FILE = "locks.json"
PULL_INTERVAL = 30.0  # a fallback: changes are pushed at once (ApplyLocks, the dial-out stream)
PULL_TIMEOUT = 10.0
MAX_LOCKS = 10_000
UNKNOWN = "locks-unknown"
UNKNOWN_LOCK = Lock(lock_id=UNKNOWN, target=EVERYTHING,
                    reason="the kept lock set cannot be read; every operation is refused "
                           "until the controller's lock set arrives")
_log = logging.getLogger("agent.locks")


class Enforcer(Protocol):
    def apply_locks(self, locks: Sequence[Lock]) -> int: ...


class BadLockSet(ValueError):
    """A lock set that is not well-formed (it is then ignored as a whole)."""


def parse_set(message: agent_pb2.LockSet) -> tuple[int, tuple[Lock, ...]]:
    """The version and locks of ``message`` (its epoch is ``message.epoch``); BadLockSet if
    any lock is malformed."""
    if len(message.locks) > MAX_LOCKS:
        raise BadLockSet(f"more than {MAX_LOCKS} locks")
    found = []
    for item in message.locks:
        try:
            parse_target(item.target)
        except BadLockTarget as exc:
            raise BadLockSet(str(exc)) from exc
        found.append(Lock(lock_id=item.lock_id[:64], target=item.target,
                          reason=item.reason[:2000], created_by=item.created_by[:64],
                          created_at=item.created_at, expires_at=item.expires_at))
    return int(message.version), tuple(found)


class LockKeeper:
    """The lock set in force on this agent, its version, and where it is kept."""

    def __init__(self, home: Path, enforcer: Enforcer) -> None:
        self.path = home / LOCKS_FILE
        self._enforcer = enforcer
        self.version = 0
        self.epoch = 0
        self.unknown = False  # the kept set could not be read: everything is refused
        self.locks: tuple[Lock, ...] = ()
        self._apply_lock = asyncio.Lock()

    def load(self) -> None:
        """Read the kept set (if any) and apply it; if it cannot be read, refuse every
        operation until the controller's set arrives (logged, not raised)."""
        try:
            epoch, version, found = read_kept_set(self.path)
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            _log.error("cannot read the kept locks; refusing every operation until the "
                       "controller's set arrives", extra={"fields": {
                           "event": "locks.unreadable", "reason": UNKNOWN,
                           "path": str(self.path), "error": str(exc)}})
            self.unknown, self.locks = True, (UNKNOWN_LOCK,)
            self._enforcer.apply_locks(self.locks)
            return
        self.epoch, self.version, self.locks = epoch, version, found
        self._enforcer.apply_locks(found)

    def _newer(self, epoch: int, version: int) -> bool:
        """Whether a set is to replace the one held: any set while the held one is unknown,
        any set of another (non-zero) epoch, else a higher version. A set without an epoch
        cannot continue one: once an epoch is held, only sets of an epoch count (or one
        such set, with a huge version, would shut out every later one of the epoch)."""
        if self.unknown or (epoch and epoch != self.epoch):
            return True
        if not epoch and self.epoch:
            return False
        return version > self.version

    async def apply(self, message: agent_pb2.LockSet, source: str) -> bool:
        """Apply ``message`` if it is newer than what is held; whether it was."""
        try:
            version, found = parse_set(message)
        except BadLockSet as exc:
            _log.warning("ignored a malformed lock set", extra={"fields": {
                "event": "locks.malformed", "source": source, "error": str(exc)}})
            return False
        epoch = int(message.epoch)
        async with self._apply_lock:
            if not self._newer(epoch, version):
                if source != "pull":  # pulls repeat every few seconds: not logged
                    _log.info("lock set already held", extra={"fields": {
                        "event": "locks.current", "version": version, "source": source}})
                return False
            new_epoch = epoch != self.epoch
            self.version, self.locks, self.unknown = version, found, False
            self.epoch = epoch or self.epoch
            cancelled = self._enforcer.apply_locks(found)  # in force before it is written
            _log.info("locks applied", extra={"fields": {
                "event": "locks.applied", "version": version, "epoch": self.epoch,
                "new_epoch": new_epoch, "locks": len(found), "source": source,
                "cancelled": cancelled,
                "targets": sorted(lock.target for lock in found)[:50]}})
            try:
                await asyncio.to_thread(write_kept, self.path, version, found, self.epoch)
            except OSError as exc:
                _log.error("cannot keep the lock set; it is in force until a restart",
                           extra={"fields": {"event": "locks.not_kept", "error": str(exc)}})
        return True


def read_kept(path: Path) -> tuple[int, tuple[Lock, ...]]:
    """The version and locks kept in ``path``; ValueError (or OSError) if unreadable."""
    return read_kept_set(path)[1:]


def read_kept_set(path: Path) -> tuple[int, int, tuple[Lock, ...]]:
    """The epoch (0 if none was kept), version and locks kept in ``path``."""
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("version"), int) \
            or not isinstance(data.get("locks"), list) \
            or not isinstance(data.get("epoch", 0), int):
        raise ValueError(f"{path} is not a lock set")
    try:
        message = agent_pb2.LockSet(version=data["version"], epoch=data.get("epoch", 0),
                                    locks=[agent_pb2.Lock(**item) for item in data["locks"]])
        return (int(message.epoch), *parse_set(message))
    except (BadLockSet, TypeError) as exc:
        raise ValueError(str(exc)) from exc


def write_kept(path: Path, version: int, found: tuple[Lock, ...], epoch: int = 0) -> None:
    text = json.dumps({"version": version, "epoch": epoch,
                       "locks": [asdict(lock) for lock in found]},
                      indent=1, sort_keys=True)
    write_private(path, text.encode())


class LockPuller:
    """Fetches the controller's set every ``interval`` seconds, until cancelled."""

    def __init__(self, keeper: LockKeeper, *, controller: str, trust_domain: str,
                 files: TlsFiles, interval: float = PULL_INTERVAL,
                 sleep: Callable[[float], Any] = asyncio.sleep) -> None:
        self._keeper = keeper
        self._controller = controller
        self._server = Identity(trust_domain, "controller")
        self._files = files
        self._interval = interval
        self._sleep = sleep
        self._channel: tuple[bytes, grpc.aio.Channel] | None = None
        self.last_error = ""

    async def run(self) -> None:
        try:
            while True:
                await self.pull()
                await self._sleep(self._interval)
        finally:
            await self.close()

    async def pull(self) -> bool:
        """One fetch; whether a newer set was applied (errors are logged once)."""
        try:
            channel = await self._open()
            stub = controller_pb2_grpc.AgentReportServiceStub(channel)
            message = await stub.FetchLocks(controller_pb2.FetchLocksRequest(
                known_version=self._keeper.version), timeout=PULL_TIMEOUT)
        except (grpc.aio.AioRpcError, OSError) as exc:
            error = exc.code().name if isinstance(exc, grpc.aio.AioRpcError) else str(exc)
            if error != self.last_error:
                _log.warning("cannot fetch the controller's locks", extra={"fields": {
                    "event": "locks.fetch_failed", "error": error}})
            self.last_error = error
            return False
        self.last_error = ""
        return await self._keeper.apply(message, "pull")

    async def _open(self) -> grpc.aio.Channel:
        """A channel with the current certificate (a renewed one gets a new channel)."""
        cert = await asyncio.to_thread(self._files.cert.read_bytes)
        if self._channel is not None and self._channel[0] == cert:
            return self._channel[1]
        await self.close()
        channel = secure_channel(self._controller, self._files, self._server)
        self._channel = (cert, channel)
        return channel

    async def close(self) -> None:
        if self._channel is not None:
            channel, self._channel = self._channel[1], None
            await channel.close()
