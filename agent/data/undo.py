"""Undo of an applied change, and recovery of applies cut off by a crash.

The inverse plan puts every row back to its before-image, expecting its after-image:
updates set the changed columns back, inserts become deletes, deletes become inserts.
It goes through the same preview, consent and apply as any change. When rows changed
since the apply, undo is refused with a three-way view (before, after, current).

Recovery reads the rows a journal entry still ``applying`` addressed: all equal to the
after-images means the commit happened (``applied``); all equal to the before-images
means it did not (``aborted``); anything else is left ``applying`` and logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from agent.changes import ChangeStore, StoredPreview
from agent.data.errors import DataUnavailable
from agent.data.plan import Plan, Step, parse_plan
from agent.data.policy import DataSourcePolicy
from agent.data.rows import read_row
from agent.data.schema import LiveSchema, reflect
from agent.data.values import Image, masked

_log = logging.getLogger("agent.data")


def inverse_plan(stored: StoredPreview, plan: Plan) -> dict[str, Any]:
    """The plan that takes the after-images back to the before-images."""
    inverse: dict[str, list[dict[str, Any]]] = {"updates": [], "inserts": [], "deletes": []}
    for step, before, after in zip(plan.steps, stored.images["before"],
                                   stored.images["after"], strict=True):
        if step.kind == "update":
            inverse["updates"].append({
                "table": step.table, "key": step.key,
                "set": {c: before[c] for c in step.values},
                "expect": {c: after[c] for c in step.values}})
        elif step.kind == "insert":
            inverse["deletes"].append({"table": step.table, "key": step.key})
        else:
            inverse["inserts"].append({"table": step.table, "row": before})
    return {kind: steps for kind, steps in inverse.items() if steps}


def current_rows(engine: sa.Engine, source: DataSourcePolicy,
                 stored: StoredPreview) -> tuple[LiveSchema, Plan, list[Image | None]]:
    """The rows ``stored`` addressed, as they are now."""
    try:
        with engine.connect() as conn, conn.begin():
            schema = reflect(conn, source)
            plan = parse_plan(stored.plan, schema, allow_deletes=True)
            rows = [read_row(conn, schema.tables[s.table], s.key) for s in plan.steps]
    except sa.exc.SQLAlchemyError as exc:
        raise DataUnavailable("the data source cannot be read") from exc
    return schema, plan, rows


def three_way(schema: LiveSchema, steps: tuple[Step, ...], stored: StoredPreview,
              current: list[Image | None]) -> list[dict[str, Any]]:
    """Rows that changed since the apply: before, after and current, masked."""
    view = []
    for step, before, after, now in zip(steps, stored.images["before"],
                                        stored.images["after"], current, strict=True):
        if now != after:
            hide = schema.tables[step.table].masked
            view.append({"table": step.table, "key": step.key, "before": masked(before, hide),
                         "after": masked(after, hide), "current": masked(now, hide)})
    return view


def resolve_applying(store: ChangeStore, engine_of: Callable[[str], sa.Engine | None],
                     sources: Callable[[str], DataSourcePolicy | None],
                     now: Callable[[], float]) -> dict[str, str]:
    """Close every journal entry still ``applying``; the verdict per digest."""
    verdicts = {}
    for digest in store.applying():
        stored = store.preview(digest)
        source = sources(stored.source) if stored else None
        engine = engine_of(stored.source) if stored else None
        if stored is None or source is None or engine is None:
            _log.error("apply in the journal names an unknown change or source",
                       extra={"fields": {"digest": digest}})
            continue
        verdict = _verdict(engine, source, stored)
        if verdict is not None:
            store.journal_end(digest, verdict, now())
            verdicts[digest] = verdict
        _log.warning("interrupted apply resolved", extra={"fields": {
            "digest": digest, "verdict": verdict or "undetermined"}})
    return verdicts


def _verdict(engine: sa.Engine, source: DataSourcePolicy, stored: StoredPreview) -> str | None:
    try:
        _schema, _plan, rows = current_rows(engine, source, stored)
    except Exception:  # unreachable now: stays "applying", retried at the next start
        _log.exception("cannot read the rows of an interrupted apply")
        return None
    if rows == stored.images["after"]:
        return "applied"
    if rows == stored.images["before"]:
        return "aborted"
    return None
