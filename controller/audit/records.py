"""Canonical event records: the leaves of the controller's tamper-evident log.

A record is UTF-8 JSON with sorted keys and no insignificant whitespace, so its bytes (and
leaf hash) follow from its fields alone::

    v        1, the record format
    kind     "consent.<requested|approved|denied|revoked|expired>",
             "session.<opened|operation|outcome|closed>" or "witness.<key-pinned|refused>"
    at       the controller's time of the event, unix seconds
    case     the case it belongs to
    session  the session id, or null for consent events
    actor    who acted (an engineer, an approver key, "controller")
    details  event fields (request, grant, scopes, operation, seq, outcome, ...)
    digests  SHA-256 (hex) of signed envelopes and receipts, of large contents by blob hash
    prev     {"index", "hash"} of the previous record of the chain the record extends, so
             a verifier walks each chain with no gap (see :func:`extends`):
             a session's records after "opened" link to the session's previous record;
             a case's records outside sessions (consent, locks) and each session's
             "opened" link to the case's previous such record; null for a chain's first
    cosig    reserved for a witness's cosignature reference (null today)

Pure: no I/O. Parsing refuses anything that is not exactly the canonical form.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from controller.audit.errors import BadRecord

VERSION = 1
CONSENT_KINDS = frozenset(f"consent.{k}" for k in
                          ("requested", "approved", "denied", "revoked", "expired",
                           "change-approved"))
OPENED, OPERATION, OUTCOME, CLOSED = ("session.opened", "session.operation",
                                      "session.outcome", "session.closed")
SESSION_KINDS = frozenset((OPENED, OPERATION, OUTCOME, CLOSED))
# Mutual witnessing: an agent's log key pinned on first use, an exchange refused.
WITNESS_KINDS = frozenset(("witness.key-pinned", "witness.refused"))
# The service company's own acts on access: locks made and removed, certificates renewed.
ADMIN_KINDS = frozenset(("lock.added", "lock.removed", "certificate.renewed"))
_FIELDS = frozenset(("v", "kind", "at", "case", "session", "actor", "details", "digests",
                     "prev", "cosig"))


@dataclass(frozen=True)
class Link:
    """A pointer to an earlier leaf: its index and leaf hash."""

    index: int
    leaf_hash: bytes


Chain = tuple[str, str]  # ("session", session id) or ("case", case id)


@dataclass(frozen=True)
class Event:
    """One event as the log records it; :func:`encode` gives its canonical bytes."""

    kind: str
    at: float
    case: str
    actor: str
    session: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    digests: Mapping[str, str] = field(default_factory=dict)
    prev: Link | None = None


def extends(event: Event) -> Chain | None:
    """The chain whose last record ``event``'s ``prev`` names, if it is in one."""
    if event.session is not None and event.kind != OPENED:
        return ("session", event.session)
    if event.case:  # a consent or lock record of a case, or a session's "opened"
        return ("case", event.case)
    return None


def heads(event: Event) -> tuple[Chain, ...]:
    """The chains ``event`` is the last record of, once appended ("opened" begins its
    session's chain and extends its case's)."""
    chains = [] if event.session is None else [("session", event.session)]
    extended = extends(event)
    if extended is not None and extended not in chains:
        chains.append(extended)
    return tuple(chains)


def sha256_hex(data: bytes | str) -> str:
    """The digest records carry: SHA-256 of the bytes (text as UTF-8), lowercase hex."""
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def encode(event: Event, *, prev: Link | None = None) -> bytes:
    """The canonical bytes of ``event`` (linked to ``prev`` instead of ``event.prev`` when
    given); raises BadRecord for values JSON cannot carry exactly."""
    link = event.prev if prev is None else prev
    _check(event, link)
    prev_obj = None if link is None else {"index": link.index, "hash": link.leaf_hash.hex()}
    obj = {"v": VERSION, "kind": event.kind, "at": event.at, "case": event.case,
           "session": event.session, "actor": event.actor, "details": dict(event.details),
           "digests": dict(event.digests), "prev": prev_obj, "cosig": None}
    return _dumps(obj)


def decode(data: bytes) -> Event:
    """The event of canonical ``data``; BadRecord if it is not a record in canonical form."""
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRecord(f"not UTF-8 JSON: {exc}") from exc
    if not isinstance(obj, dict) or set(obj) != _FIELDS or obj["v"] != VERSION:
        raise BadRecord("not a version-1 record (fields missing, extra or unknown version)")
    event = Event(obj["kind"], obj["at"], obj["case"], obj["actor"], obj["session"],
                  obj["details"], obj["digests"], _link(obj["prev"]))
    if encode(event) != data:
        raise BadRecord("record is not in canonical form")
    return event


def _link(value: object) -> Link | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"index", "hash"} \
            or type(value["index"]) is not int or not isinstance(value["hash"], str):
        raise BadRecord("prev is not {index, hash}")
    try:
        digest = bytes.fromhex(value["hash"])
    except ValueError as exc:
        raise BadRecord("prev hash is not hex") from exc
    return Link(value["index"], digest)


def _check(event: Event, prev: Link | None) -> None:
    if event.kind not in CONSENT_KINDS | SESSION_KINDS | WITNESS_KINDS | ADMIN_KINDS:
        raise BadRecord(f"unknown kind {event.kind!r}")
    if not isinstance(event.at, int | float) or isinstance(event.at, bool) \
            or not math.isfinite(event.at):
        raise BadRecord("at is not a finite number")
    if not (isinstance(event.case, str) and isinstance(event.actor, str)):
        raise BadRecord("case and actor are strings")
    if (event.kind in SESSION_KINDS) != isinstance(event.session, str):
        raise BadRecord("session events, and only they, name a session")
    if not (isinstance(event.details, Mapping) and isinstance(event.digests, Mapping)):
        raise BadRecord("details and digests are objects")
    if not all(isinstance(v, str) for v in event.digests.values()):
        raise BadRecord("digests are hex strings")
    if prev is not None and (prev.index < 0 or len(prev.leaf_hash) != 32):
        raise BadRecord("prev is not a leaf index and a 32-byte hash")


def _dumps(obj: object) -> bytes:
    try:
        text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise BadRecord(f"not representable as canonical JSON: {exc}") from exc
    return text.encode("utf-8")
