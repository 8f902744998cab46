"""The log records of the store's consent and session rows (see controller.audit.records).

Each builder is pure; the store appends its result in the transaction that writes the row.
Signed envelopes and receipts enter the log by the SHA-256 of their stored text
(:func:`controller.store.codec.envelope_text`), the exact bytes an auditor fetches.
"""

from __future__ import annotations

from controller.audit.records import CLOSED, OPENED, OPERATION, OUTCOME, Event, sha256_hex
from controller.store.codec import envelope_text
from controller.store.records import ConsentEntry, Session, SessionEvent
from permissions import Envelope

CONTROLLER = "controller"


def consent_event(entry: ConsentEntry) -> Event:
    details = {"request": entry.request_id, "grant": entry.grant_id, "agent": entry.agent_id,
               "reason": entry.reason, "scopes": list(entry.scopes)}
    return Event(f"consent.{entry.kind}", entry.at, entry.case_id, entry.actor,
                 details=details, digests=_digest("envelope", entry.envelope))


def session_opened(session: Session) -> Event:
    details = {"engineer": session.engineer, "agent": session.agent_id,
               "grant": session.grant_id}
    return Event(OPENED, session.started_at, session.case_id, session.engineer,
                 session.session_id, details)


def operation_attempted(event: SessionEvent, event_id: int, case_id: str) -> Event:
    details = {"event": event_id, "seq": event.seq, "operation": event.operation,
               "params_sha256": sha256_hex(event.params_json), "outcome": event.outcome,
               "detail": event.detail}
    return Event(OPERATION, event.started_at, case_id, event.engineer, event.session_id,
                 details, _digest("operation_envelope", event.operation_envelope))


def operation_finished(event: SessionEvent, case_id: str) -> Event:
    """The outcome of ``event`` as finished (outcome, detail, duration and receipt set)."""
    duration = event.duration_ms or 0.0
    details = {"event": event.event_id, "seq": event.seq, "operation": event.operation,
               "outcome": event.outcome, "detail": event.detail, "duration_ms": duration}
    return Event(OUTCOME, event.started_at + duration / 1000.0, case_id, event.engineer,
                 event.session_id, details, _digest("receipt", event.receipt))


def session_closed(session: Session, reason: str, now: float) -> Event:
    return Event(CLOSED, now, session.case_id, CONTROLLER, session.session_id,
                 {"reason": reason})


def _digest(name: str, envelope: Envelope | None) -> dict[str, str]:
    return {} if envelope is None else {name: sha256_hex(envelope_text(envelope))}
