"""Tables of records shared by several commands: requests, sessions, events, consent."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from controller.cli import _output as out

if TYPE_CHECKING:
    from rmaint.v1 import common_pb2
    from rmaint.v1 import controller_pb2 as pb


def requests_table(requests: Sequence[pb.AccessRequest]) -> None:
    from permissions import format_duration

    # What was asked, then what the customer granted: an approval may narrow both.
    out.table("Access requests", (
        "Request", "Case", "Agent", "Engineer", "Asked", "For", "Status", "Filed", "Grant",
        "Granted", "Until", "Reason",
    ), ((r.request_id, r.case_id, r.agent_id, r.engineer, ", ".join(r.scopes),
         format_duration(r.duration_seconds), r.status, out.when(r.created_at),
         r.grant_id or "-", ", ".join(r.granted_scopes) or "-", out.when(r.granted_until),
         r.reason) for r in requests))


def sessions_table(sessions: Iterable[pb.Session], current: str | None = None) -> None:
    def mark(session_id: str) -> str:
        return f"{session_id} *" if session_id == current else session_id

    out.table("Sessions" + (" (* current)" if current else ""), (
        "Session", "Case", "Agent", "Engineer", "Grant", "Started", "Ended", "End reason",
    ), ((mark(s.session_id), s.case_id, s.agent_id, s.engineer, s.grant_id,
         out.when(s.started_at), out.when(s.ended_at), s.end_reason or "-") for s in sessions))


def receipt_digest(receipt: common_pb2.Envelope) -> str:
    """``sha256:<hex>`` naming the agent's signed receipt, or "-" when there is none."""
    from permissions import MalformedStatement, digest
    from rmaint.envelopes import from_wire

    try:
        return digest(from_wire(receipt))
    except MalformedStatement:
        return "-"


def events_table(events: Iterable[pb.SessionEvent]) -> None:
    out.table("Events", (
        "Event", "Seq", "Operation", "Params", "Outcome", "Started", "Duration", "Receipt",
    ), ((e.event_id, e.seq, e.operation, e.params_json or "{}",
         e.outcome + (f" ({e.detail})" if e.detail else ""), out.when(e.started_at),
         out.millis(e.duration_ms), receipt_digest(e.receipt)) for e in events))


def consent_table(entries: Iterable[pb.ConsentEntry]) -> None:
    out.table("Consent log", (
        "Entry", "At", "Kind", "Request", "Grant", "Case", "Agent", "Actor", "Scopes", "Reason",
    ), ((e.entry_id, out.when(e.at), e.kind, e.request_id or "-", e.grant_id or "-",
         e.case_id, e.agent_id, actor(e), ", ".join(e.scopes) or "-", e.reason or "-")
        for e in entries))


def actor(entry: pb.ConsentEntry) -> str:
    """Who acted: an approver as the name its agent reports now and 16 hex digits of the
    key id (only the key is signed: 8 digits could be matched by a key made to look alike)."""
    if not entry.actor_name:
        return entry.actor
    return f"{entry.actor_name} ({entry.actor[:23]}…)"
