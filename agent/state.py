"""The agent's local state: access requests received, grants, revocations, the engineer
keys the customer has accepted, and the outbox of consent decisions still to be reported
to the controller.

Each decision is stored together with its outbox entry in one durable transaction, so
nothing the customer signed is lost or reported twice. A request is decided once: the
transaction that approves or denies it also checks, by a conditional update, that it is
still pending, so of concurrent decisions exactly one wins (the others raise
ConsentRejected and change nothing). Envelopes are kept as received.

Engineer keys are pinned on first use, by the customer: the transaction that stores a
grant also pins the key it names for the engineer's name if no key is pinned for that
name yet. If other keys are pinned for the name, it refuses (KeyChanged) unless the
customer explicitly accepted the new key, which it then pins too. Only the customer's
local commands reach these methods; nothing received from the controller changes a pin.
A database made before pinning existed pins, once, the keys of the grants it holds.

Methods block and may be called from any thread; on the event loop, call them through
``asyncio.to_thread`` or hand them to the database's own thread with
:meth:`StateStore.submit`. Failures raise StateUnavailable.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec, TypeVar

from agent.errors import ConsentRejected, StateUnavailable
from agent.sqlite import Database, Row
from agent.wire import envelope_blob, envelope_from_blob
from permissions import AccessRequest, Denial, Envelope, Grant, Revocation

P = ParamSpec("P")
T = TypeVar("T")
REQUEST_TTL = 24 * 3600  # undecided requests expire, as on the controller
BUSY_TIMEOUT = 5.0  # seconds a write waits for another connection's lock

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    request_id TEXT PRIMARY KEY, case_id TEXT NOT NULL, engineer TEXT NOT NULL,
    envelope BLOB NOT NULL, status TEXT NOT NULL, received_at REAL NOT NULL,
    decided_at REAL
);
CREATE TABLE IF NOT EXISTS grants (
    grant_id TEXT PRIMARY KEY, request_id TEXT NOT NULL, case_id TEXT NOT NULL,
    engineer_key_id TEXT NOT NULL, not_before INTEGER NOT NULL, not_after INTEGER NOT NULL,
    envelope BLOB NOT NULL, stored_at REAL NOT NULL, revoked_at REAL
);
CREATE TABLE IF NOT EXISTS revocations (
    grant_id TEXT PRIMARY KEY, reason TEXT NOT NULL, approver_key_id TEXT NOT NULL,
    envelope BLOB NOT NULL, stored_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS engineer_keys (
    engineer TEXT NOT NULL, key_id TEXT NOT NULL, pinned_at REAL NOT NULL,
    approver_key_id TEXT NOT NULL, approver TEXT NOT NULL, request_id TEXT NOT NULL,
    grant_id TEXT NOT NULL, PRIMARY KEY (engineer, key_id)
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, envelope BLOB NOT NULL,
    created_at REAL NOT NULL, reported_at REAL, attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT ''
);
"""
_VERSION = 1  # PRAGMA user_version: 1 = engineer keys pinned from the grants held before


class KeyChanged(ConsentRejected):
    """The grant names a key other than those the customer accepted for its engineer."""


class KeyConflict(KeyChanged):
    """No key is accepted for the engineer yet, and pending requests in that name carry
    different keys."""


@dataclass(frozen=True)
class PinnedKey:
    """An engineer key the customer accepted: which approval pinned it, when, and by whom."""

    engineer: str
    key_id: str
    pinned_at: float
    approver_key_id: str
    approver: str  # the approver's name in agent.toml then; "" if not known
    request_id: str
    grant_id: str


def key_changed(request: AccessRequest, pinned: Sequence[PinnedKey]) -> bool:
    """Whether keys are pinned for the request's engineer name, and not the one it carries."""
    keys = {k.key_id for k in pinned if k.engineer == request.engineer}
    return bool(keys) and request.engineer_key_id not in keys


def describe_change(engineer: str, new_key_id: str, pinned: Sequence[PinnedKey]) -> str:
    """One line: the key(s) pinned for ``engineer``, and the other key a request carries."""
    known = [k for k in pinned if k.engineer == engineer]
    shown = ", ".join(f"{k.key_id} (approved {_day(k.pinned_at)}"
                      + (f" by {k.approver})" if k.approver else ")") for k in known)
    verb = "key was" if len(known) == 1 else "keys were"
    return f"{engineer}'s {verb} {shown}, this request is signed by {new_key_id}"


def _day(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds).date().isoformat()


@dataclass(frozen=True)
class StoredRequest:
    envelope: Envelope
    request: AccessRequest
    status: str
    received_at: float

    def status_at(self, now: float) -> str:
        """pending, approved, denied, or expired when left pending past REQUEST_TTL."""
        if self.status == "pending" and now >= self.received_at + REQUEST_TTL:
            return "expired"
        return self.status


@dataclass(frozen=True)
class StoredGrant:
    envelope: Envelope
    grant: Grant
    revoked_at: float | None

    def status_at(self, now: float) -> str:
        """active, not-yet-valid, expired or revoked, by the clock reading ``now``."""
        if self.revoked_at is not None:
            return "revoked"
        if now < self.grant.not_before:
            return "not-yet-valid"
        return "expired" if now >= self.grant.not_after else "active"


@dataclass(frozen=True)
class OutboxItem:
    id: int
    kind: str
    envelope: Envelope


class StateStore:
    """The state database at ``path``."""

    def __init__(self, path: Path, *, busy_timeout: float | None = None) -> None:
        self._db = Database(path, _SCHEMA, error=StateUnavailable,
                            busy_timeout=BUSY_TIMEOUT if busy_timeout is None else busy_timeout)
        try:
            self._migrate()
        except BaseException:
            self._db.close()
            raise

    def _migrate(self) -> None:
        """Pin, once, the engineer keys of grants stored before pinning existed."""
        if self._db.query("PRAGMA user_version")[0][0] >= _VERSION:
            return
        with self._db.transaction() as conn:
            if conn.execute("PRAGMA user_version").fetchone()[0] >= _VERSION:
                return  # another connection migrated meanwhile
            rows = conn.execute("SELECT envelope, stored_at FROM grants "
                                "ORDER BY stored_at, grant_id").fetchall()
            for blob, stored_at in rows:
                grant = Grant.from_payload(envelope_from_blob(blob).payload)
                _insert_pin(conn, grant, stored_at, approver="")
            conn.execute(f"PRAGMA user_version = {_VERSION}")

    def submit(self, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> asyncio.Future[T]:
        """``call(*args, **kwargs)`` started in the database's own thread (Database.submit)."""
        return self._db.submit(call, *args, **kwargs)

    def add_request(self, envelope: Envelope, request: AccessRequest, now: float) -> bool:
        """Keep a verified request; False if one with its id is already known."""
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO requests (request_id, case_id, engineer, envelope, "
                "status, received_at) VALUES (?, ?, ?, ?, 'pending', ?)",
                (request.request_id, request.case_id, request.engineer,
                 envelope_blob(envelope), now))
            return cursor.rowcount == 1

    def get_request(self, request_id: str) -> StoredRequest | None:
        rows = self._db.query("SELECT envelope, status, received_at FROM requests "
                              "WHERE request_id = ?", (request_id,))
        return _request(rows[0]) if rows else None

    def list_requests(self) -> list[StoredRequest]:
        """All requests, newest first."""
        rows = self._db.query("SELECT envelope, status, received_at FROM requests "
                              "ORDER BY received_at DESC, request_id DESC")
        return [_request(row) for row in rows]

    def store_grant(self, envelope: Envelope, grant: Grant, now: float, *,
                    accept_new_key: bool = False, approver: str = "") -> bool:
        """Keep a verified grant, mark its request approved, pin its engineer key, queue
        the report.

        False (and nothing changes) if the grant id is already stored; ConsentRejected
        (and nothing changes) if the request is no longer pending; KeyChanged (and nothing
        changes) if other keys are pinned for the engineer and ``accept_new_key`` is not
        set. ``approver`` is the signing approver's name, kept with a new pin.
        """
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO grants (grant_id, request_id, case_id, engineer_key_id, "
                "not_before, not_after, envelope, stored_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (grant.grant_id, grant.request_id, grant.case_id, grant.engineer_key_id,
                 grant.not_before, grant.not_after, envelope_blob(envelope), now))
            if cursor.rowcount != 1:
                return False
            _decide(conn, grant.request_id, "approved", now)
            _pin(conn, grant, now, accept_new_key=accept_new_key, approver=approver)
            _queue(conn, "grant", envelope, now)
        return True

    def engineer_keys(self, engineer: str | None = None) -> list[PinnedKey]:
        """Pinned engineer keys (of one engineer name if given), by name, oldest first."""
        where, args = ("WHERE engineer = ?", (engineer,)) if engineer is not None else ("", ())
        rows = self._db.query(f"SELECT {_PIN_COLUMNS} FROM engineer_keys {where} "  # noqa: S608
                              "ORDER BY engineer, pinned_at, key_id", args)
        return [PinnedKey(*row) for row in rows]

    def forget_engineer_keys(self, engineer: str, key_id: str = "") -> list[PinnedKey]:
        """Remove the pins of ``engineer`` (only ``key_id`` if given); the pins removed."""
        where = "engineer = ?" + (" AND key_id = ?" if key_id else "")
        args = (engineer, key_id) if key_id else (engineer,)
        with self._db.transaction() as conn:
            rows = conn.execute(f"SELECT {_PIN_COLUMNS} FROM engineer_keys "  # noqa: S608
                                f"WHERE {where} ORDER BY pinned_at, key_id", args).fetchall()
            conn.execute(f"DELETE FROM engineer_keys WHERE {where}", args)  # noqa: S608
        return [PinnedKey(*row) for row in rows]

    def queue_report(self, kind: str, envelope: Envelope, now: float) -> None:
        """Queue a signed statement for the controller's consent log (e.g. a change consent)."""
        with self._db.transaction() as conn:
            _queue(conn, kind, envelope, now)

    def store_denial(self, envelope: Envelope, denial: Denial, now: float) -> None:
        """Mark the request denied and queue the signed denial for the controller.

        ConsentRejected (and nothing changes) if the request is no longer pending.
        """
        with self._db.transaction() as conn:
            _decide(conn, denial.request_id, "denied", now)
            _queue(conn, "denial", envelope, now)

    def store_revocation(self, envelope: Envelope, revocation: Revocation, now: float) -> bool:
        """Keep a verified revocation and queue it; False if the grant was already revoked."""
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO revocations (grant_id, reason, approver_key_id, envelope, "
                "stored_at) VALUES (?, ?, ?, ?, ?)",
                (revocation.grant_id, revocation.reason, revocation.approver_key_id,
                 envelope_blob(envelope), now))
            if cursor.rowcount != 1:
                return False
            conn.execute("UPDATE grants SET revoked_at = ? WHERE grant_id = ?",
                         (now, revocation.grant_id))
            _queue(conn, "revocation", envelope, now)
        return True

    def get_grant(self, grant_id: str) -> StoredGrant | None:
        rows = self._db.query("SELECT envelope, revoked_at FROM grants WHERE grant_id = ?",
                              (grant_id,))
        return _grant(rows[0]) if rows else None

    def list_grants(self) -> list[StoredGrant]:
        """All grants, newest first."""
        rows = self._db.query("SELECT envelope, revoked_at FROM grants "
                              "ORDER BY stored_at DESC, grant_id DESC")
        return [_grant(row) for row in rows]

    def revoked_ids(self) -> set[str]:
        return {row[0] for row in self._db.query("SELECT grant_id FROM revocations")}

    def pending_reports(self) -> list[OutboxItem]:
        """Decisions not yet acknowledged by the controller, oldest first."""
        rows = self._db.query("SELECT id, kind, envelope FROM outbox "
                              "WHERE reported_at IS NULL ORDER BY id")
        return [OutboxItem(row[0], row[1], envelope_from_blob(row[2])) for row in rows]

    def mark_reported(self, item_id: int, now: float) -> None:
        with self._db.transaction() as conn:
            conn.execute("UPDATE outbox SET reported_at = ?, attempts = attempts + 1 "
                         "WHERE id = ?", (now, item_id))

    def note_report_failure(self, item_id: int, error: str) -> None:
        with self._db.transaction() as conn:
            conn.execute("UPDATE outbox SET attempts = attempts + 1, last_error = ? "
                         "WHERE id = ?", (error[:500], item_id))

    def is_reported(self, envelope: Envelope) -> bool:
        rows = self._db.query("SELECT reported_at FROM outbox WHERE envelope = ? "
                              "ORDER BY id DESC LIMIT 1", (envelope_blob(envelope),))
        return bool(rows) and rows[0][0] is not None

    def unreported_count(self) -> int:
        return int(self._db.query("SELECT COUNT(*) FROM outbox WHERE reported_at IS NULL")[0][0])

    def close(self) -> None:
        self._db.close()


def _decide(conn: sqlite3.Connection, request_id: str, status: str, now: float) -> None:
    """Decide a pending, unexpired request; ConsentRejected (rolling back) otherwise."""
    cursor = conn.execute(
        "UPDATE requests SET status = ?, decided_at = ? "
        "WHERE request_id = ? AND status = 'pending' AND received_at + ? > ?",
        (status, now, request_id, REQUEST_TTL, now))
    if cursor.rowcount != 1:
        raise ConsentRejected(f"request {request_id} is no longer pending")


_PIN_COLUMNS = "engineer, key_id, pinned_at, approver_key_id, approver, request_id, grant_id"


def _pin(conn: sqlite3.Connection, grant: Grant, now: float, *, accept_new_key: bool,
         approver: str) -> None:
    """Pin the grant's engineer key; KeyChanged (rolling back) for an unaccepted new key."""
    rows = conn.execute(f"SELECT {_PIN_COLUMNS} FROM engineer_keys "  # noqa: S608
                        "WHERE engineer = ? ORDER BY pinned_at, key_id",
                        (grant.engineer,)).fetchall()
    pinned = [PinnedKey(*row) for row in rows]
    if any(k.key_id == grant.engineer_key_id for k in pinned):
        return
    if pinned and not accept_new_key:
        raise KeyChanged(
            f"request {grant.request_id} not approved: KEY CHANGED: "
            f"{describe_change(grant.engineer, grant.engineer_key_id, pinned)}; "
            "the customer must accept the new key explicitly (rmagent approve "
            "--accept-new-key)")
    if not pinned and not accept_new_key:
        _refuse_rival_keys(conn, grant, now)
    _insert_pin(conn, grant, now, approver=approver)


def _refuse_rival_keys(conn: sqlite3.Connection, grant: Grant, now: float) -> None:
    """KeyConflict when another pending request in the same engineer's name carries
    another key: approving the first would pin whichever key it carries."""
    rows = conn.execute(
        "SELECT envelope, status, received_at FROM requests "
        "WHERE engineer = ? AND status = 'pending' AND request_id != ? AND received_at + ? > ?",
        (grant.engineer, grant.request_id, REQUEST_TTL, now)).fetchall()
    rivals = sorted({r.request.engineer_key_id for r in map(_request, rows)}
                    - {grant.engineer_key_id})
    if rivals:
        raise KeyConflict(
            f"request {grant.request_id} not approved: KEY CONFLICT: no key is pinned for "
            f"{grant.engineer!r} yet and other pending requests in that name are signed by "
            f"{', '.join(rivals)}, not {grant.engineer_key_id}; check with {grant.engineer} "
            "by another channel which key is theirs, deny the others, and approve with "
            "--accept-new-key")


def _insert_pin(conn: sqlite3.Connection, grant: Grant, now: float, *, approver: str) -> None:
    conn.execute(
        f"INSERT OR IGNORE INTO engineer_keys ({_PIN_COLUMNS}) "  # noqa: S608
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (grant.engineer, grant.engineer_key_id, now, grant.approver_key_id, approver,
         grant.request_id, grant.grant_id))


def _queue(conn: sqlite3.Connection, kind: str, envelope: Envelope, now: float) -> None:
    conn.execute(
        "INSERT INTO outbox (kind, envelope, created_at) VALUES (?, ?, ?)",
        (kind, envelope_blob(envelope), now))


def _request(row: Row) -> StoredRequest:
    envelope = envelope_from_blob(row[0])
    # Verified on receipt; re-parsing the stored bytes cannot change what was verified.
    return StoredRequest(envelope, AccessRequest.from_payload(envelope.payload), row[1], row[2])


def _grant(row: Row) -> StoredGrant:
    envelope = envelope_from_blob(row[0])
    return StoredGrant(envelope, Grant.from_payload(envelope.payload), row[1])
