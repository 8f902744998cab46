"""Previewed changes, the customer's consents to them, and the apply journal.

One durable SQLite database (``<home>/changes.db``, every commit fsynced):

- ``previews``: each preview with its ``kind`` (``data``: rows of a data source;
  ``config``: a parameter file, ``source`` its name; ``service``: a service action),
  plan, unmasked images, digest, the context it was made in (agent, case, grant,
  session, engineer key) and its expiry; ``status`` moves ``pending`` -> ``applied`` |
  ``aborted`` | ``denied``. A database from before ``kind`` gets the column (``data``).
  A preview never applied (``pending``, ``denied``, or ``aborted`` before its apply wrote
  anything: no journal entry) is forgotten, with
  its consents, ``FORGET_AFTER`` seconds after it expired: its images hold the customer's
  rows, and nothing can use it any more. Applied changes stay: an undo reads them.
- ``consents``: change-consent envelopes as signed; ``used_at`` is set once, by a
  conditional update, so a consent is consumed exactly once even under concurrency.
- ``journal``: one entry per apply, written ``applying`` (with the before-image) before
  the change is made, then ``applied`` (with the apply's ``record``, what an undo needs)
  or ``aborted``; entries still ``applying`` at start are resolved by
  :func:`agent.data.undo.resolve_applying` (data), ``ParamOperations.resolve_applying``
  (config) and ``ServiceOperations.resolve_applying`` (service).

Methods block; failures raise StateUnavailable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import BadInput, StateUnavailable
from agent.sqlite import Database, Row
from agent.wire import envelope_blob, envelope_from_blob
from permissions import Envelope

PREVIEW_TTL = 30 * 60
FORGET_AFTER = 7 * 24 * 3600
CHANGES_NAME = "changes.db"
KINDS = ("data", "config", "service")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS previews (
    digest TEXT PRIMARY KEY, source TEXT NOT NULL, undo_of TEXT, plan TEXT NOT NULL,
    schema_fp TEXT NOT NULL, images TEXT NOT NULL, agent_id TEXT NOT NULL,
    case_id TEXT NOT NULL, grant_id TEXT NOT NULL, session_id TEXT NOT NULL,
    engineer TEXT NOT NULL, engineer_key_id TEXT NOT NULL, created_at REAL NOT NULL,
    expires_at REAL NOT NULL, status TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL DEFAULT 'data'
);
CREATE TABLE IF NOT EXISTS consents (
    consent_id TEXT PRIMARY KEY, digest TEXT NOT NULL, envelope BLOB NOT NULL,
    stored_at REAL NOT NULL, used_at REAL
);
CREATE TABLE IF NOT EXISTS journal (
    digest TEXT PRIMARY KEY, state TEXT NOT NULL, before TEXT NOT NULL,
    started_at REAL NOT NULL, finished_at REAL, record TEXT
);
"""
# Columns added after the first release, for databases made before them.
_ADDED = (("previews", "kind", "TEXT NOT NULL DEFAULT 'data'"), ("journal", "record", "TEXT"))
_SELECT_PREVIEWS = """SELECT digest, source, undo_of, plan, schema_fp, images, agent_id,
    case_id, grant_id, session_id, engineer, engineer_key_id, created_at, expires_at, status,
    detail, kind FROM previews"""


@dataclass(frozen=True)
class StoredPreview:
    """A preview as stored. For ``data``, ``images`` holds ``before``, ``after``,
    ``side_effects``, ``counts``; ``config`` and ``service`` keep their engine's preview in
    ``plan`` and leave ``images`` and ``schema_fp`` empty."""

    digest: str
    source: str
    undo_of: str | None
    plan: dict[str, Any]
    schema_fp: str
    images: dict[str, Any]
    agent_id: str
    case_id: str
    grant_id: str
    session_id: str
    engineer: str
    engineer_key_id: str
    created_at: float
    expires_at: float
    status: str = "pending"
    detail: str = ""
    kind: str = "data"

    @classmethod
    def of_row(cls, row: Row) -> StoredPreview:
        values = list(row)
        values[3], values[5] = json.loads(values[3]), json.loads(values[5])
        return cls(*values)


@dataclass(frozen=True)
class StoredConsent:
    consent_id: str
    digest: str
    envelope: Envelope
    used_at: float | None


# Changes one grant may have waiting for the customer at once: enough for any repair, few
# enough that the customer's review ('rmagent changes') stays readable and small.
MAX_PENDING_PER_GRANT = 16


class TooManyPending(BadInput):
    """The grant has MAX_PENDING_PER_GRANT changes waiting already."""


class ChangeStore:
    """The durable store above; ``path`` is made 0600."""

    def __init__(self, path: Path) -> None:
        self._db = Database(path, _SCHEMA, error=StateUnavailable)
        self.submit = self._db.submit
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        with self._db.transaction() as conn:
            for table, column, declaration in _ADDED:
                present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
                if column not in present:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")

    def close(self) -> None:
        self._db.close()

    def add_preview(self, preview: StoredPreview) -> None:
        """Store ``preview``, a new change: every preview's digest carries a nonce, so no
        consent given to another preview can serve it, and none that was applied or denied
        comes back as pending."""
        with self._db.transaction() as conn:
            waiting = conn.execute(
                "SELECT count(*) FROM previews WHERE grant_id = ? AND status = 'pending' "
                "AND expires_at > ?", (preview.grant_id, preview.created_at)).fetchone()[0]
            if waiting >= MAX_PENDING_PER_GRANT and preview.undo_of is None:  # undo: never held up
                raise TooManyPending(
                    f"{waiting} changes under this grant await the customer's decision: "
                    "wait for decisions, or for previews to expire, before previewing more")
            _forget_unapplied(conn, before=preview.created_at - FORGET_AFTER)
            conn.execute(
                "INSERT INTO previews (digest, source, undo_of, plan, schema_fp, images, "
                "agent_id, case_id, grant_id, session_id, engineer, engineer_key_id, "
                "created_at, expires_at, status, detail, kind) VALUES "
                "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (preview.digest, preview.source, preview.undo_of, json.dumps(preview.plan),
                 preview.schema_fp, json.dumps(preview.images), preview.agent_id,
                 preview.case_id, preview.grant_id, preview.session_id, preview.engineer,
                 preview.engineer_key_id, preview.created_at, preview.expires_at,
                 preview.status, preview.detail, preview.kind))

    def preview(self, digest: str) -> StoredPreview | None:
        rows = self._db.query(_SELECT_PREVIEWS + " WHERE digest = ?", (digest,))
        return StoredPreview.of_row(rows[0]) if rows else None

    def previews(self, *, status: str | None = None, now: float | None = None,
                 prefix: str = "", limit: int | None = None) -> list[StoredPreview]:
        """Previews newest first, by status, unexpired at ``now``, digest prefix; at most
        ``limit`` of them."""
        rows = self._db.query(
            _SELECT_PREVIEWS + _MATCHING + " ORDER BY created_at DESC LIMIT ?",
            (status, status, now, now, len(prefix), prefix, -1 if limit is None else limit))
        return [StoredPreview.of_row(r) for r in rows]

    def count(self, *, status: str | None = None, now: float | None = None,
              prefix: str = "") -> int:
        """How many previews :meth:`previews` would list with no limit."""
        rows = self._db.query("SELECT count(*) FROM previews" + _MATCHING,  # noqa: S608
                              (status, status, now, now, len(prefix), prefix))
        return int(rows[0][0])

    def set_status(self, digest: str, status: str, detail: str = "", *,
                   only_from: str | None = None) -> bool:
        """Move a preview to ``status`` (only from ``only_from`` if given); whether it moved."""
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE previews SET status = ?, detail = ? WHERE digest = ? "
                "AND (? IS NULL OR status = ?)", (status, detail, digest, only_from, only_from))
            return cursor.rowcount == 1

    def add_consent(self, consent_id: str, digest: str, envelope: Envelope, at: float) -> bool:
        """Store a consent; False if its id is taken already (nothing is replaced)."""
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO consents (consent_id, digest, envelope, stored_at) "
                "VALUES (?,?,?,?)", (consent_id, digest, envelope_blob(envelope), at))
            return cursor.rowcount == 1

    def consents(self, digest: str) -> list[StoredConsent]:
        rows = self._db.query("SELECT consent_id, digest, envelope, used_at FROM consents "
                              "WHERE digest = ? ORDER BY stored_at", (digest,))
        return [StoredConsent(r[0], r[1], envelope_from_blob(r[2]), r[3]) for r in rows]

    def consume(self, consent_id: str, at: float) -> bool:
        """Mark the consent used, durably; False if it was already used, or its change is
        no longer pending (denied since the apply looked: the denial wins)."""
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE consents SET used_at = ? WHERE consent_id = ? AND used_at IS NULL "
                "AND EXISTS (SELECT 1 FROM previews WHERE previews.digest = consents.digest "
                "AND previews.status = 'pending')", (at, consent_id))
            return cursor.rowcount == 1

    def journal_begin(self, digest: str, before: list[Any], at: float) -> None:
        """Record, durably, that ``digest`` is being applied over ``before``."""
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO journal (digest, state, before, started_at) VALUES "
                "(?, 'applying', ?, ?) ON CONFLICT(digest) DO UPDATE SET state = 'applying', "
                "before = excluded.before, started_at = excluded.started_at, "
                "finished_at = NULL WHERE journal.state = 'aborted'",
                (digest, json.dumps(before), at))
            if cursor.rowcount != 1:
                raise StateUnavailable(f"change {digest} is already in the journal")

    def journal_end(self, digest: str, state: str, at: float,
                    record: dict[str, Any] | None = None) -> None:
        """Close a journal entry as ``applied`` or ``aborted``, with the preview's status;
        ``record`` is what the apply reported (kept on the agent, for an undo)."""
        with self._db.transaction() as conn:
            conn.execute("UPDATE journal SET state = ?, finished_at = ?, record = ? "
                         "WHERE digest = ?", (state, at, _json_or_null(record), digest))
            conn.execute("UPDATE previews SET status = ? WHERE digest = ?", (state, digest))

    def journal_state(self, digest: str) -> str | None:
        rows = self._db.query("SELECT state FROM journal WHERE digest = ?", (digest,))
        return str(rows[0][0]) if rows else None

    def journal_started_at(self, digest: str) -> float | None:
        """When the apply of ``digest`` began (by the agent's clock), if it is journalled."""
        rows = self._db.query("SELECT started_at FROM journal WHERE digest = ?", (digest,))
        return float(rows[0][0]) if rows else None

    def journal_record(self, digest: str) -> dict[str, Any] | None:
        """The record an ``applied`` entry was closed with, if any."""
        rows = self._db.query("SELECT record FROM journal WHERE digest = ? "
                              "AND state = 'applied'", (digest,))
        return json.loads(rows[0][0]) if rows and rows[0][0] is not None else None

    def applying(self, kind: str = "data") -> list[str]:
        """Digests of ``kind`` whose apply started and was never closed."""
        return [str(r[0]) for r in self._db.query(
            "SELECT journal.digest FROM journal LEFT JOIN previews USING (digest) "
            "WHERE journal.state = 'applying' AND coalesce(previews.kind, 'data') = ? "
            "ORDER BY journal.started_at", (kind,))]


_MATCHING = (" WHERE (? IS NULL OR status = ?) AND (? IS NULL OR expires_at > ?) "
             "AND substr(digest, 1, ?) = ?")
_UNAPPLIED = ("SELECT digest FROM previews WHERE status IN ('pending', 'denied', 'aborted') "
              "AND expires_at <= ? AND digest NOT IN (SELECT digest FROM journal)")


def _forget_unapplied(conn: Any, *, before: float) -> None:
    """Drop previews never applied that expired before ``before``, and their consents."""
    conn.execute(f"DELETE FROM consents WHERE digest IN ({_UNAPPLIED})", (before,))  # noqa: S608
    conn.execute(f"DELETE FROM previews WHERE digest IN ({_UNAPPLIED})", (before,))  # noqa: S608


def _json_or_null(record: dict[str, Any] | None) -> str | None:
    return None if record is None else json.dumps(record, sort_keys=True)

