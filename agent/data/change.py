"""Preview and apply of a plan, on one connection, in one transaction each.

Both run the same three phases, so the images of a preview are exactly what an apply
finds: read (and on apply, lock) every addressed row, run every step, read the rows
again. A preview always rolls back; its digest covers the source, plan, schema
fingerprint, images and side effects. An apply commits only when every row still equals
its before-image, every step touched exactly one row and every after-image equals the
preview's; the journal entry (before-image, state ``applying``) is durable before COMMIT.

``checkpoint(name)`` is called at each named point of an apply (``begin``, ``read``,
``locked``, ``step-1``, ``steps-done``, ``verified``, ``journaled``, ``committed``,
``closed``): the crash tests stop the process there.

Servers run both in REPEATABLE READ (see :mod:`agent.data.schema`). A row another client
changed after the transaction's snapshot is then either refused by the server when the
apply locks it (PostgreSQL; MariaDB with innodb_snapshot_isolation), or read as it is now
by the locking read and found unlike its before-image (MariaDB otherwise); both are the
apply's "rows changed since the preview", as is a deadlock with such a writer.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from agent.changes import ChangeStore, StoredPreview
from agent.data.errors import DataUnavailable, InvalidPlan, PlanDrifted
from agent.data.plan import Plan, Step, parse_plan
from agent.data.policy import DataSourcePolicy
from agent.data.rows import planned_keys, read_row, run_step, side_effects, snapshot
from agent.data.schema import LiveSchema, reflect
from agent.data.values import Image

Checkpoint = Callable[[str], None]


def _no_checkpoint(_name: str) -> None:
    return None


@dataclass(frozen=True)
class Previewed:
    """A preview's outcome; ``images`` are unmasked (they stay on the agent)."""

    digest: str
    plan: Plan
    schema_fp: str
    images: dict[str, Any]


def preview_plan(engine: sa.Engine, source: DataSourcePolicy, raw_plan: Any, *,
                 undo: bool = False) -> Previewed:
    """Run the plan in a transaction that is always rolled back. ``undo``: the agent's own
    inverse of an applied change (it may delete, and compare masked columns), not a plan
    an engineer sent."""
    with _connect(engine) as conn:
        tx = conn.begin()
        try:
            schema = reflect(conn, source)
            plan = parse_plan(raw_plan, schema, allow_deletes=undo, from_engineer=not undo)
            before_all = snapshot(conn, schema)
            before, after = _run(conn, schema, plan, _refuse_preview)
            effects = side_effects(before_all, snapshot(conn, schema),
                                   planned_keys(plan.steps, schema))
        except sa.exc.DBAPIError as exc:
            if _changed_since_snapshot(exc):
                raise PlanDrifted("rows changed while the preview ran: nothing was changed; "
                                  "preview again") from exc
            raise
        finally:
            tx.rollback()
    # The nonce makes every preview its own change: a consent is never carried over to a
    # later preview of the same rows, and the same correction can be made again after an
    # undo (a digest applied once is never applied again).
    images = {"keys": [s.key for s in plan.steps], "before": before, "after": after,
              "side_effects": effects, "counts": _counts(plan), "nonce": secrets.token_hex(16)}
    fingerprint = schema.fingerprint()
    return Previewed(change_digest(schema.source.name, plan.to_json(), fingerprint, images),
                     plan, fingerprint, images)


def change_digest(source: str, plan: dict[str, Any], schema_fp: str,
                  images: dict[str, Any]) -> str:
    """sha256 over canonical JSON of what the customer consents to."""
    body = {"source": source, "plan": plan, "schema": schema_fp, "images": images}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def apply_previewed(engine: sa.Engine, source: DataSourcePolicy, stored: StoredPreview,
                    store: ChangeStore, *,
                    now: Callable[[], float],
                    checkpoint: Checkpoint = _no_checkpoint) -> dict[str, Any]:
    """Apply ``stored`` exactly as previewed, or raise PlanDrifted having changed nothing."""
    with _connect(engine) as conn:
        checkpoint("begin")
        tx = conn.begin()
        try:
            before = _verified_run(conn, source, stored, checkpoint)
            store.journal_begin(stored.digest, before, now())
        except BaseException:
            tx.rollback()
            raise
        checkpoint("journaled")
        try:
            tx.commit()
        except sa.exc.SQLAlchemyError as exc:
            # Committed or not: recovery decides from the rows themselves.
            raise DataUnavailable("commit failed; the agent will work out whether it "
                                  "happened") from exc
        checkpoint("committed")
    store.journal_end(stored.digest, "applied", now())
    checkpoint("closed")
    return {"digest": stored.digest, "status": "applied", "counts": stored.images["counts"]}


def _verified_run(conn: sa.Connection, source: DataSourcePolicy, stored: StoredPreview,
                  checkpoint: Checkpoint) -> list[Image | None]:
    schema = reflect(conn, source)
    if schema.fingerprint() != stored.schema_fp:
        raise PlanDrifted("the schema changed since the preview: nothing was changed")
    plan = parse_plan(stored.plan, schema, allow_deletes=True)
    before_all = snapshot(conn, schema)
    checkpoint("read")
    try:
        before, after = _run(conn, schema, plan, _refuse_apply, stored.images["before"],
                             checkpoint)
    except sa.exc.DBAPIError as exc:
        if _changed_since_snapshot(exc):
            raise PlanDrifted("rows changed since the preview: nothing was changed") from exc
        raise
    except InvalidPlan as exc:  # a step the preview ran breaks a constraint now
        raise PlanDrifted(f"rows changed since the preview ({exc}): nothing was "
                          "changed") from exc
    if after != stored.images["after"]:
        raise PlanDrifted("the result differs from the preview: nothing was changed")
    effects = side_effects(before_all, snapshot(conn, schema), planned_keys(plan.steps, schema))
    if effects != stored.images["side_effects"]:  # e.g. a trigger the preview did not set off
        raise PlanDrifted("the change would now also change other rows than previewed: "
                          "nothing was changed")
    checkpoint("verified")
    return before


def _run(conn: sa.Connection, schema: LiveSchema, plan: Plan,
         refuse: Callable[[str], Exception], expected: list[Any] | None = None,
         checkpoint: Checkpoint = _no_checkpoint) -> tuple[list[Image | None], list[Image | None]]:
    rows = [(schema.tables[s.table], s) for s in plan.steps]
    before = [read_row(conn, table, step.key, lock=True) for table, step in rows]
    if expected is not None and before != expected:
        raise refuse("rows changed since the preview: nothing was changed")
    for (_table, step), image in zip(rows, before, strict=True):
        _check_before(step, image, refuse)
    checkpoint("locked")
    for number, (table, step) in enumerate(rows, 1):
        if run_step(conn, table, step) != 1:
            raise refuse(f"step {number} did not touch exactly one row")
        if number == 1:
            checkpoint("step-1")
    checkpoint("steps-done")
    after = [read_row(conn, table, step.key) for table, step in rows]
    return before, after


def _check_before(step: Step, image: Image | None, refuse: Callable[[str], Exception]) -> None:
    if step.kind == "insert" and image is not None:
        raise refuse(f"{step.table}: a row with that key exists already")
    if step.kind != "insert" and image is None:
        raise refuse(f"{step.table}: no row with that key")
    if image is not None and any(image.get(c) != v for c, v in step.expect.items()):
        raise refuse(f"{step.table}: the row does not hold the expected values")


# Serialization failure and deadlock (PostgreSQL); "record has changed since last read"
# (with innodb_snapshot_isolation) and deadlock (MariaDB): a concurrent writer of the rows.
_SQLSTATES = frozenset(("40001", "40P01"))
_MYSQL_CODES = frozenset((1020, 1213))


def _changed_since_snapshot(exc: sa.exc.DBAPIError) -> bool:
    """Whether the server refused the statement because another client changed its rows."""
    orig = exc.orig
    if getattr(orig, "sqlstate", None) in _SQLSTATES:
        return True
    args: tuple[Any, ...] = getattr(orig, "args", ())
    return bool(args) and args[0] in _MYSQL_CODES


def _refuse_preview(message: str) -> Exception:
    return InvalidPlan(message)


def _refuse_apply(message: str) -> Exception:
    return PlanDrifted(message)


def _counts(plan: Plan) -> dict[str, int]:
    return {kind: sum(1 for s in plan.steps if s.kind == kind[:-1])
            for kind in ("updates", "inserts", "deletes")}


def _connect(engine: sa.Engine) -> sa.Connection:
    try:
        return engine.connect()
    except sa.exc.SQLAlchemyError as exc:
        raise DataUnavailable("the data source cannot be reached") from exc
