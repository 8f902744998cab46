"""Mutual witnessing, the agent's half: have the controller cosign this log, cosign its log.

Each exchange signs a checkpoint of the log as it is, and sends it to the controller with
the entries the controller does not mirror yet (at most ``batch`` at a time, and at most
:data:`MAX_BATCH_BYTES` of records, so that an exchange stays well under the 4 MiB a gRPC
message may hold: a long backlog of large records never stalls witnessing) and the
consistency proofs from the end of that batch and from the checkpoint the controller
cosigned last. The controller answers with the checkpoint cosigned, and with its own latest
checkpoint and a consistency proof from the last one this agent cosigned. The agent checks
that proof with the controller's log key (pinned on first use; a different key later is
refused) and only then cosigns and returns it. So neither side can rewrite history alone:
a rewritten controller log fails here, a rewritten agent log fails there.

Runs on the sync loop (:mod:`agent.sync`), when the log grew or every ``interval`` seconds.
Its own connection to the log database keeps the log's thread free for operations.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec, TypeVar

import tlog
from agent import ledger
from agent.errors import AgentError, LogUnavailable
from agent.sqlite import Database, to_the_end
from rmaint.v1 import controller_pb2, controller_pb2_grpc

BATCH = 500
MAX_BATCH_BYTES = 1024 * 1024  # one record alone may exceed it (the controller caps records)
INTERVAL = 60.0
MAX_EXCHANGES = 50  # per round: a long backlog is sent over the next rounds
_log = logging.getLogger("agent.witness")
P = ParamSpec("P")
T = TypeVar("T")


class WitnessFailed(AgentError):
    """The controller's answer does not hold (changed key, rolled back or forked log)."""


@dataclass(frozen=True)
class Prepared:
    """One exchange's request, and the agent checkpoint it carries."""

    request: controller_pb2.WitnessRequest
    size: int
    mirrored_end: int


@dataclass(frozen=True)
class Progress:
    """What one round achieved: the sizes the controller holds of this log."""

    mirrored: int
    cosigned: int
    size: int
    controller_size: int


class Witness:
    """Witnessing for the log at ``path``, signed by ``signer`` (the agent's log key)."""

    def __init__(self, path: Path, signer: tlog.NoteSigner, *,
                 clock: Callable[[], float] = time.time, interval: float = INTERVAL,
                 batch: int = BATCH) -> None:
        self._db = Database(path, ledger.SCHEMA, error=LogUnavailable)
        self._tree = ledger.Ledger()
        self._signer, self._clock = signer, clock
        self._interval, self._batch = interval, batch
        self._mirrored: int | None = None  # as the controller last said
        self._cosigned = 0
        self._last_at = float("-inf")
        self._last_size = -1

    def close(self) -> None:
        self._db.close()

    async def due(self) -> bool:
        """Whether a round is due: the log grew since the last one, or ``interval`` passed."""
        if self._clock() - self._last_at >= self._interval:
            return True
        size = await to_the_end(self._db.submit(self._db.query, ledger.SIZE))
        return int(size[0][0]) != self._last_size

    async def round(self, stub: controller_pb2_grpc.AgentReportServiceStub,
                    timeout: float) -> Progress:
        """Exchanges until the controller mirrors the whole log (or MAX_EXCHANGES)."""
        progress, resent = Progress(0, 0, 0, 0), 0
        for _ in range(MAX_EXCHANGES):
            progress, accepted = await self._exchange(stub, timeout)
            resent = 0 if accepted else resent + 1
            if (accepted and progress.mirrored >= progress.size) or resent > 1:
                break
        self._last_at, self._last_size = self._clock(), progress.size
        return progress

    async def _exchange(self, stub: controller_pb2_grpc.AgentReportServiceStub,
                        timeout: float) -> tuple[Progress, bool]:
        if self._mirrored is None:
            self._mirrored, self._cosigned = await self._run(self._believed)
        prepared = await self._run(self._prepare, self._mirrored or 0, self._cosigned)
        reply = await stub.Witness(prepared.request, timeout=timeout)
        self._mirrored, self._cosigned = int(reply.mirrored_size), int(reply.cosigned_size)
        if not reply.accepted:  # sizes differed; the next exchange starts from the controller's
            return Progress(self._mirrored, self._cosigned, prepared.size, 0), False
        controller = await self._run(self._pin, reply.controller_log_key)
        await self._run(self._keep_cosigned, bytes(reply.cosigned), prepared, controller)
        controller_size = 0
        if reply.controller_checkpoint:
            note, checkpoint = await self._run(
                self._check_controller, bytes(reply.controller_checkpoint),
                tuple(bytes(p) for p in reply.controller_proof), controller)
            await stub.CosignCheckpoint(controller_pb2.CosignCheckpointRequest(
                cosigned=note), timeout=timeout)
            await self._run(self._keep_witnessed, note, checkpoint)
            controller_size = checkpoint.size
        return Progress(self._mirrored, self._cosigned, prepared.size, controller_size), True

    async def _run(self, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await to_the_end(self._db.submit(call, *args, **kwargs))

    # The steps below run in the database's own thread.

    def _believed(self) -> tuple[int, int]:
        """Start from the last cosignature kept: the controller mirrors at least that much."""
        row = self._db.query("SELECT MAX(size) FROM witness_cosigned")
        size = int(row[0][0] or 0)
        return size, size

    def _prepare(self, mirrored: int, cosigned: int) -> Prepared:
        with self._db.transaction() as conn:
            head = self._tree.checkpoint(conn, self._signer, self._signer.name, self._clock())
            witnessed = conn.execute("SELECT MAX(size) FROM witnessed").fetchone()[0] or 0
            request = controller_pb2.WitnessRequest(
                log_key=self._signer.verifier.vkey(), checkpoint=head.note,
                mirrored_size=mirrored, cosigned_size=cosigned, controller_size=int(witnessed))
            end = mirrored
            if mirrored <= head.size and cosigned <= head.size:
                # Otherwise this log holds less than the controller saw: it refuses, and says so.
                records = within_bytes(self._tree.records(conn, mirrored, self._batch),
                                       MAX_BATCH_BYTES)
                end = mirrored + len(records)
                request.entries.extend(records)
                request.entries_proof.extend(self._tree.consistency(conn, end, head.size))
                request.cosigned_proof.extend(self._tree.consistency(conn, cosigned, head.size))
        return Prepared(request, head.size, end)

    def _pin(self, vkey: str) -> tlog.NoteVerifier:
        try:
            offered = tlog.parse_verifier_key(vkey)
        except tlog.TlogError as exc:
            raise WitnessFailed(f"the controller's log key is not a verifier key: {exc}") \
                from exc
        with self._db.transaction() as conn:
            row = conn.execute("SELECT vkey FROM witness_keys WHERE id = 1").fetchone()
            if row is None:
                conn.execute("INSERT INTO witness_keys (id, vkey, pinned_at) VALUES (1, ?, ?)",
                             (offered.vkey(), self._clock()))
                _log.warning("controller log key pinned on first use", extra={"fields": {
                    "event": "witness.key_pinned", "key": offered.vkey()}})
                return offered
        if row[0] != offered.vkey():
            raise _failed(f"the controller presented log key {offered.vkey()}, but {row[0]} "
                          f"is pinned: its log key changed")
        return offered

    def _keep_cosigned(self, note: bytes, prepared: Prepared,
                       controller: tlog.NoteVerifier) -> None:
        try:
            signed = tlog.open_checkpoint(note, [self._signer.verifier, controller],
                                          origin=self._signer.name, quorum=2)
        except tlog.TlogError as exc:
            raise _failed(f"the controller's cosignature on this log's checkpoint does not "
                          f"verify: {exc}") from exc
        if signed.checkpoint.size != prepared.size:
            raise _failed(f"the controller cosigned size {signed.checkpoint.size}, "
                          f"not the {prepared.size} sent")
        with self._db.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO witness_cosigned (size, note, at) "
                         "VALUES (?, ?, ?)", (prepared.size, note, self._clock()))

    def _check_controller(self, note: bytes, proof: tuple[bytes, ...],
                          key: tlog.NoteVerifier) -> tuple[bytes, tlog.Checkpoint]:
        """The controller's checkpoint, cosigned by this agent once it proved consistent."""
        try:
            signed = tlog.open_checkpoint(note, [key], origin=key.name)
        except tlog.TlogError as exc:
            raise _failed(f"the controller's checkpoint does not verify with its pinned key: "
                          f"{exc}") from exc
        new = signed.checkpoint
        last = self._db.query("SELECT size, root FROM witnessed ORDER BY size DESC LIMIT 1")
        if last:
            old = tlog.Checkpoint(new.origin, int(last[0][0]), bytes(last[0][1]))
            if new.size < old.size:
                raise _failed(f"the controller's log has {new.size} records, fewer than the "
                              f"{old.size} this agent cosigned: it was rolled back")
            try:
                tlog.verify_extends(old, new, proof)
            except tlog.TlogError as exc:
                raise _failed(f"the controller's checkpoint of size {new.size} does not extend "
                              f"the one of size {old.size} this agent cosigned: its history "
                              f"was rewritten: {exc}") from exc
        return tlog.cosign(signed.note.note, [self._signer]).encode(), new

    def _keep_witnessed(self, note: bytes, checkpoint: tlog.Checkpoint) -> None:
        with self._db.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO witnessed (size, root, note, at) "
                         "VALUES (?, ?, ?, ?)",
                         (checkpoint.size, checkpoint.root_hash, note, self._clock()))


def within_bytes(records: list[bytes], budget: int) -> list[bytes]:
    """The leading ``records`` whose sizes add up to at most ``budget`` (at least one, so
    that an oversized record is still sent, and refused by the controller with a reason
    it keeps, rather than never sent at all)."""
    total = 0
    for count, record in enumerate(records):
        total += len(record)
        if total > budget:
            return records[:max(count, 1)]
    return records


def _failed(reason: str) -> WitnessFailed:
    _log.error("witnessing refused the controller's answer", extra={"fields": {
        "event": "witness.refused", "reason": reason}})
    return WitnessFailed(reason)


def latest_cosigned(conn: sqlite3.Connection) -> tuple[int, bytes] | None:
    """The last checkpoint of this log the controller cosigned: ``(size, note)``."""
    row = conn.execute("SELECT size, note FROM witness_cosigned ORDER BY size DESC LIMIT 1"
                       ).fetchone()
    return None if row is None else (int(row[0]), bytes(row[1]))


def pinned_controller(conn: sqlite3.Connection) -> tlog.NoteVerifier | None:
    row = conn.execute("SELECT vkey FROM witness_keys WHERE id = 1").fetchone()
    return None if row is None else tlog.parse_verifier_key(str(row[0]))


def witnessed_count(conn: sqlite3.Connection) -> tuple[int, int]:
    """How many controller checkpoints this agent cosigned, and the largest size."""
    row = conn.execute("SELECT COUNT(*), COALESCE(MAX(size), 0) FROM witnessed").fetchone()
    return int(row[0]), int(row[1])

