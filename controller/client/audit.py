"""The auditor's side of the controller's log: pin its key, fetch evidence, verify it here.

Nothing the controller says is trusted: evidence is checked against the log key pinned in
the auditor's home (``<home>/log.vkey``). The key is pinned on first use (and the command
says so, so it can be compared with the deployment's ``log.vkey``), or given explicitly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tlog
from controller.audit.errors import BadEvidence
from controller.audit.evidence import Evidence, from_json
from controller.audit.keys import read_vkey
from controller.audit.verify import Report, verify_evidence
from controller.client.api import ControllerClient
from controller.client.errors import ConfigError, InputError
from rmaint.v1 import controller_pb2 as pb

PIN_FILE = "log.vkey"


@dataclass(frozen=True)
class Pinned:
    key: tlog.NoteVerifier
    first_use: bool  # pinned just now, from the controller's answer


def read_pin(home: Path, explicit: Path | None = None) -> tlog.NoteVerifier | None:
    """The key in ``explicit`` (a log.vkey file), else the home's pin, else None."""
    path = explicit or home / PIN_FILE
    if explicit is None and not path.exists():
        return None
    try:
        return read_vkey(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read the log key {path}: {exc.strerror or exc}") from exc
    except tlog.TlogError as exc:
        raise ConfigError(f"{path} is not a log verifier key: {exc}") from exc


async def pinned_key(home: Path, client: ControllerClient, explicit: Path | None) -> Pinned:
    """The pinned key; pins the controller's on first use."""
    key = read_pin(home, explicit)
    if key is not None:
        return Pinned(key, False)
    try:
        key = read_vkey(await client.log_key())
    except tlog.TlogError as exc:
        raise InputError(f"the controller's log key is not a verifier key: {exc}") from exc
    (home / PIN_FILE).write_text(key.vkey() + "\n")
    return Pinned(key, True)


def evidence_request(*, case: str = "", session: str = "", event: int | None = None,
                     full: bool = False, since: bytes = b"") -> pb.GetEvidenceRequest:
    """Exactly one scope; InputError otherwise."""
    named = [bool(case), bool(session), event is not None, full]
    if sum(named) != 1:
        raise InputError("name exactly one of --case, --session, --full (or an event)")
    if case:
        return pb.GetEvidenceRequest(case_id=case, since_checkpoint=since)
    if session:
        return pb.GetEvidenceRequest(session_id=session, since_checkpoint=since)
    if event is not None:
        return pb.GetEvidenceRequest(event_index=event, since_checkpoint=since)
    return pb.GetEvidenceRequest(full=True, since_checkpoint=since)


def scope_asked(*, case: str = "", session: str = "", event: int | None = None,
                full: bool = False, **_others: Any) -> dict[str, Any]:
    """The scope that evidence for :func:`evidence_request` of these arguments names."""
    if case:
        return {"case": case}
    if session:
        return {"session": session}
    return {"event": event} if event is not None else {"full": True}


def check(data: bytes, key: tlog.NoteVerifier, agent_keys: Sequence[tlog.NoteVerifier] = (),
          *, asked: dict[str, Any] | None = None) -> tuple[Evidence, Report]:
    """Parse and verify evidence bytes (BadEvidence if they do not parse, or are not of
    the scope ``asked`` for: the scope is not signed, and a controller could relabel)."""
    evidence = from_json(data)
    if asked is not None and evidence.scope != asked:
        raise BadEvidence(f"the controller sent evidence of {evidence.scope}, not of the "
                          f"{asked} asked for")
    return evidence, verify_evidence(evidence, key, agent_keys)


def read_agent_keys(paths: Sequence[Path]) -> list[tlog.NoteVerifier]:
    """Agents' log keys from files the auditor holds (``rmagent verify-log --json`` gives
    ``log_key``). Never the controller's record of them: offline checks trust only pins."""
    keys = []
    for path in paths:
        try:
            keys.append(read_vkey(path.read_text()))
        except OSError as exc:
            raise ConfigError(f"cannot read the agent log key {path}: {exc.strerror or exc}") from exc
        except tlog.TlogError as exc:
            raise ConfigError(f"{path} is not an agent log verifier key: {exc}") from exc
    return keys


async def reconcile(client: ControllerClient, agent_id: str) -> pb.ReconcileResponse:
    """The controller's comparison of an agent's witnessed log with its own events."""
    # The client's audit stub and error translation (see ControllerClient._call).
    reply: pb.ReconcileResponse = await client._call(
        client._audit.Reconcile, pb.ReconcileRequest(agent_id=agent_id),
        name="Reconcile", timeout=120.0)
    return reply


def checkpoint_size(note: bytes, key: tlog.NoteVerifier) -> tlog.Checkpoint:
    """A kept checkpoint, verified against the pinned key; InputError if it does not verify."""
    try:
        return tlog.open_checkpoint(note, [key], origin=key.name).checkpoint
    except tlog.TlogError as exc:
        raise InputError(f"the kept checkpoint does not verify with the pinned key: {exc}") \
            from exc
