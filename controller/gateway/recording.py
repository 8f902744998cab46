"""Storing a finished recording: the blob by SHA-256, and a session event that names it.

The event (operation ``shell.recording``) sits in the engineer's session next to the
``shell.open`` operation that made the ticket, carries that operation's signed envelope
(so the recording is tied to what the engineer signed) and, in its parameters, the
recording's SHA-256, the agent's SHA-256 of all output it sent and whether they agree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from controller.store import blobs, sessions
from controller.store.records import SessionEvent

OPERATION = "shell.recording"


class NoShellOpen(LookupError):
    """The session has no ``shell.open`` event with the ticket's sequence number."""


@dataclass(frozen=True)
class Finished:
    """A shell that ended, as the gateway saw it."""

    session_id: str
    seq: int
    engineer: str
    agent_id: str
    shell_id: str
    started_at: float
    duration_ms: float
    status: int
    reason: str
    output_sha256: str
    agent_output_sha256: str


def store_recording(conn: Connection, cast: bytes, shell: Finished, now: float) -> str:
    """Store ``cast`` and its session event in one transaction; the cast's SHA-256 (hex)."""
    digest = blobs.put(conn, cast, now)
    opener = next((e for e in sessions.list_events(conn, shell.session_id)
                   if e.operation == "shell.open" and e.seq == shell.seq), None)
    if opener is None:
        raise NoShellOpen(f"session {shell.session_id} has no shell.open seq {shell.seq}")
    params = {"recording_sha256": digest, "agent_id": shell.agent_id,
              "shell_id": shell.shell_id, "output_sha256": shell.output_sha256,
              "agent_output_sha256": shell.agent_output_sha256,
              "output_matches": shell.output_sha256 == shell.agent_output_sha256,
              "exit_status": shell.status, "end_reason": shell.reason, "bytes": len(cast)}
    sessions.add_event(conn, SessionEvent(
        event_id=None, session_id=shell.session_id, seq=shell.seq, engineer=shell.engineer,
        operation=OPERATION, params_json=json.dumps(params, sort_keys=True), outcome="ok",
        detail=f"{shell.reason}, exit status {shell.status}", started_at=shell.started_at,
        duration_ms=shell.duration_ms, receipt=None,
        operation_envelope=opener.operation_envelope))
    return digest


def recordings(conn: Connection, session_id: str) -> list[SessionEvent]:
    """The session's recording events, oldest first, without their blobs."""
    return [e for e in sessions.list_events(conn, session_id) if e.operation == OPERATION]


def recording_blob(conn: Connection, event: SessionEvent) -> bytes | None:
    """The recording ``event`` names (None if gone)."""
    return blobs.get(conn, _digest_of(event))


def _digest_of(event: SessionEvent) -> str:
    return str(json.loads(event.params_json).get("recording_sha256", ""))
