"""AuditService: the controller's log as evidence, for auditors and admins (read-only).

Registered by the server next to the API's other services (:func:`register_audit`); it
needs the log's public key, which only the server holds.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import grpc

import tlog
from controller.audit.evidence import to_json
from controller.audit.export import collect
from controller.audit.reconcile import reconcile
from controller.errors import FailedPrecondition, InvalidArgument
from controller.services import _common
from controller.services._common import Deps
from controller.services._downloads import download
from controller.store import auditlog
from rmaint.v1 import controller_pb2 as pb
from rmaint.v1 import controller_pb2_grpc

MAX_SINCE = 64 * 1024  # a signed checkpoint is a few hundred bytes
EVIDENCE_CHUNK = 1024 * 1024  # well under gRPC's 4 MiB message limit


class AuditService(controller_pb2_grpc.AuditServiceServicer):
    def __init__(self, deps: Deps, key: tlog.NoteVerifier) -> None:
        self._deps = deps
        self._key = key

    async def GetLogKey(self, request: pb.GetLogKeyRequest,
                        context: grpc.aio.ServicerContext) -> pb.GetLogKeyResponse:
        return pb.GetLogKeyResponse(verifier_key=self._key.vkey())

    async def GetCheckpoint(self, request: pb.GetCheckpointRequest,
                            context: grpc.aio.ServicerContext) -> pb.GetCheckpointResponse:
        latest = await self._deps.store.read(auditlog.latest_checkpoint)
        if latest is None:
            raise FailedPrecondition("the log has no signed checkpoint yet")
        return pb.GetCheckpointResponse(checkpoint=latest.note)

    async def GetEvidence(self, request: pb.GetEvidenceRequest,
                          context: grpc.aio.ServicerContext) -> AsyncIterator[pb.EvidenceChunk]:
        """The evidence file in chunks of EVIDENCE_CHUNK bytes, so its size is not bound by
        gRPC's message limit.

        Serialized once, then chunked: the evidence is collected whole in one read
        transaction (records, proofs and checkpoint must agree), so streaming the JSON text
        itself would save only the last copy. The serialization runs in a worker thread, and
        the chunks are views of that one buffer. The first chunk carries the file's size and
        SHA-256, so the client tells a stream cut short from a complete one.
        """
        scope = _scope(request)
        if len(request.since_checkpoint) > MAX_SINCE:
            raise InvalidArgument("since_checkpoint is too large to be a checkpoint")
        since = request.since_checkpoint or None
        with download():
            evidence = await self._deps.store.read(collect, scope, since=since)
            data = await asyncio.to_thread(to_json, evidence)
            digest = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
            view = memoryview(data)
            yield pb.EvidenceChunk(data=bytes(view[:EVIDENCE_CHUNK]), total_size=len(data),
                                   sha256=digest)
            for start in range(EVIDENCE_CHUNK, len(data), EVIDENCE_CHUNK):
                yield pb.EvidenceChunk(data=bytes(view[start:start + EVIDENCE_CHUNK]))

    async def Reconcile(self, request: pb.ReconcileRequest,
                        context: grpc.aio.ServicerContext) -> pb.ReconcileResponse:
        """An agent's witnessed log against the controller's events for it."""
        agent_id = _common.name(request.agent_id, "agent_id")
        found = await self._deps.store.read(reconcile, agent_id)
        return pb.ReconcileResponse(
            status=found.status, mirrored_size=found.mirrored_size,
            cosigned_size=found.cosigned_size, witnessed_at=found.witnessed_at,
            agent_log_key=found.agent_log_key, last_refusal=found.last_refusal,
            agent_operations=found.agent_operations,
            controller_operations=found.controller_operations, pending=found.pending,
            not_relayed=found.not_relayed,
            differences=[pb.ReconcileDifference(
                kind=d.kind, session_id=d.session_id, seq=d.seq, agent_index=d.agent_index,
                event_id=d.event_id, detail=d.detail) for d in found.differences])


def _scope(request: pb.GetEvidenceRequest) -> dict[str, Any]:
    which = request.WhichOneof("scope")
    if which == "case_id":
        return {"case": _common.text(request.case_id, "case_id", limit=64)}
    if which == "session_id":
        return {"session": _common.text(request.session_id, "session_id", limit=64)}
    if which == "full" and request.full:
        return {"full": True}
    if which == "event_index":
        return {"event": int(request.event_index)}
    raise InvalidArgument("name a case, a session, an event index, or the full log")


def register_audit(server: grpc.aio.Server, deps: Deps, key: tlog.NoteVerifier) -> list[str]:
    """Add AuditService; returns its full name."""
    controller_pb2_grpc.add_AuditServiceServicer_to_server(AuditService(deps, key), server)
    return [pb.DESCRIPTOR.services_by_name["AuditService"].full_name]
