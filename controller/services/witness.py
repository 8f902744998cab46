"""AgentReportService.Witness and CosignCheckpoint: the controller's half of mutual witnessing
(the checks are :mod:`controller.audit.witness`'s).

A refused exchange is uniform outside (``PERMISSION_DENIED``) and precise inside: the
reason goes to the structured log at error level, onto the agent's witness state and into
the controller's own log, where ``rmctl audit reconcile`` shows it. An exchange that cannot
be taken at all (``INVALID_ARGUMENT``: a record over 256 KiB, too many entries) is kept the
same way, its reason starting "exchange failed: ", so that a stalled witnessing says why.
"""

from __future__ import annotations

import logging

from sqlalchemy.engine import Connection

import tlog
from controller.audit.checkpointer import log_signer
from controller.audit.witness import (
    EXCHANGE_FAILED,
    MAX_ENTRIES,
    MAX_PROOF,
    Exchange,
    Witnessed,
    WitnessRefused,
    agent_origin,
    controller_view,
    cosigned_by_agent,
    refused,
    witness,
)
from controller.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from controller.logs import log_event
from controller.services._common import Deps
from controller.store import directory
from rmaint.v1 import controller_pb2 as pb

MAX_NOTE = 64 * 1024  # a signed checkpoint is a few hundred bytes
MAX_RECORD = 256 * 1024


async def serve_witness(deps: Deps, agent_id: str, request: pb.WitnessRequest) -> pb.WitnessResponse:
    signer = log_signer(deps.store)
    if signer is None:
        raise FailedPrecondition("this controller's log is not open")
    now = deps.clock()
    try:
        exchange = _exchange(request)
    except InvalidArgument as exc:  # kept: reconcile says why witnessing stalls
        await _refuse(deps, agent_id, EXCHANGE_FAILED + str(exc), now)
        raise
    origin = agent_origin(agent_id, deps.trust_domain)
    try:
        done = await deps.store.write(_witness, agent_id, exchange, origin, signer, now)
    except WitnessRefused as exc:
        await _refuse(deps, agent_id, str(exc), now)
        raise PermissionDenied(str(exc)) from exc
    if done.accepted:
        log_event("witness.cosigned", agent_id=agent_id, size=done.cosigned_size,
                  mirrored=done.mirrored_size, entries=len(exchange.entries))
    note, proof = await deps.store.read(controller_view, int(request.controller_size))
    return pb.WitnessResponse(
        accepted=done.accepted, mirrored_size=done.mirrored_size,
        cosigned_size=done.cosigned_size, cosigned=done.cosigned,
        controller_log_key=signer.verifier.vkey(), controller_checkpoint=note,
        controller_proof=list(proof))


async def serve_cosign(deps: Deps, agent_id: str,
                       request: pb.CosignCheckpointRequest) -> pb.CosignCheckpointResponse:
    signer = log_signer(deps.store)
    if signer is None:
        raise FailedPrecondition("this controller's log is not open")
    if not request.cosigned or len(request.cosigned) > MAX_NOTE:
        raise InvalidArgument("cosigned: a signed checkpoint of at most 64 KiB")
    now = deps.clock()
    try:
        size = await deps.store.write(cosigned_by_agent, agent_id, request.cosigned,
                                      signer.verifier, now)
    except WitnessRefused as exc:
        await _refuse(deps, agent_id, str(exc), now)
        raise PermissionDenied(str(exc)) from exc
    log_event("witness.countersigned", agent_id=agent_id, size=size)
    return pb.CosignCheckpointResponse()


def _witness(conn: Connection, agent_id: str, exchange: Exchange, origin: str,
             signer: tlog.NoteSigner, now: float) -> Witnessed:
    if directory.get_agent(conn, agent_id) is None:
        raise PermissionDenied(f"agent {agent_id} holds a certificate but is not enrolled")
    return witness(conn, agent_id, exchange, origin, signer, now)


async def _refuse(deps: Deps, agent_id: str, reason: str, now: float) -> None:
    log_event("witness.refused", logging.ERROR, agent_id=agent_id, reason=reason)
    try:
        await deps.store.write(refused, agent_id, reason, now)
    except Exception:  # the refusal stands even if it cannot be kept
        log_event("witness.refusal_not_kept", logging.ERROR, agent_id=agent_id, exc_info=True)


def _exchange(request: pb.WitnessRequest) -> Exchange:
    if not request.log_key or len(request.log_key) > 1024:
        raise InvalidArgument("log_key: a verifier key string")
    if not request.checkpoint or len(request.checkpoint) > MAX_NOTE:
        raise InvalidArgument("checkpoint: a signed checkpoint of at most 64 KiB")
    if len(request.entries) > MAX_ENTRIES:
        raise InvalidArgument(f"entries: at most {MAX_ENTRIES} per exchange")
    if any(len(e) > MAX_RECORD for e in request.entries):
        raise InvalidArgument("entries: a record is at most 256 KiB")
    if len(request.entries_proof) > MAX_PROOF or len(request.cosigned_proof) > MAX_PROOF:
        raise InvalidArgument(f"proofs: at most {MAX_PROOF} hashes")
    return Exchange(request.log_key, bytes(request.checkpoint), int(request.mirrored_size),
                    tuple(bytes(e) for e in request.entries),
                    tuple(bytes(p) for p in request.entries_proof),
                    int(request.cosigned_size), tuple(bytes(p) for p in request.cosigned_proof))
