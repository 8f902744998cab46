"""Statements on single rows and whole-table snapshots, built with SQLAlchemy Core.

Every identifier comes from a :class:`~agent.data.schema.LiveTable`; every value is bound.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import sqlalchemy as sa

from agent.data.errors import InvalidPlan
from agent.data.plan import Step
from agent.data.schema import LiveSchema, LiveTable
from agent.data.values import Image, image, to_db

SNAPSHOT_ROWS = 10_000  # larger tables are compared by row count only


def _where(table: LiveTable, key: dict[str, Any]) -> sa.ColumnElement[bool]:
    cols = table.table.columns
    return sa.and_(*(cols[k] == to_db(cols[k], v) for k, v in key.items()))


def read_row(conn: sa.Connection, table: LiveTable, key: dict[str, Any], *,
             lock: bool = False) -> Image | None:
    """The row at ``key`` (allowlisted columns), locked for update when ``lock``."""
    query = sa.select(table.table).where(_where(table, key))
    if lock and conn.dialect.name != "sqlite":  # SQLite: BEGIN IMMEDIATE holds the lock
        query = query.with_for_update()
    return image(conn.execute(query).mappings().first())


def run_step(conn: sa.Connection, table: LiveTable, step: Step) -> int:
    """Execute one step; the number of rows it touched."""
    cols = table.table.columns
    values = {c: to_db(cols[c], v) for c, v in step.values.items()}
    if step.kind == "update":
        statement: sa.Executable = sa.update(table.table).where(
            _where(table, step.key)).values(values)
    elif step.kind == "insert":
        statement = sa.insert(table.table).values(values)
    else:
        statement = sa.delete(table.table).where(_where(table, step.key))
    try:
        return conn.execute(statement, execution_options={"preserve_rowcount": True}).rowcount
    except sa.exc.IntegrityError as exc:
        raise InvalidPlan(f"{step.kind} on {table.name} breaks a constraint of the "
                          "database") from exc


def snapshot(conn: sa.Connection, schema: LiveSchema) -> dict[str, dict[str, Any]]:
    """Per table: row count and, when small enough, a hash per row keyed by its key."""
    return {name: _snapshot(conn, table) for name, table in sorted(schema.tables.items())}


def _snapshot(conn: sa.Connection, table: LiveTable) -> dict[str, Any]:
    count = conn.execute(sa.select(sa.func.count()).select_from(table.table)).scalar_one()
    if count > SNAPSHOT_ROWS or not table.writable:
        return {"count": count}
    rows = conn.execute(sa.select(table.table)).mappings()
    hashes = {}
    for row in rows:
        img = image(row) or {}
        key = json.dumps([img[k] for k in table.primary_key], sort_keys=True)
        hashes[key] = hashlib.sha256(json.dumps(img, sort_keys=True).encode()).hexdigest()
    return {"count": count, "rows": hashes}


def side_effects(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]],
                 planned: dict[str, set[str]]) -> list[dict[str, Any]]:
    """Tables whose rows changed beyond the planned ones (triggers, cascades)."""
    effects = []
    for name in sorted(before):
        old, new, mine = before[name], after[name], planned.get(name, set())
        if "rows" in old and "rows" in new:
            keys = (set(old["rows"]) | set(new["rows"])) - mine
            changed = sorted(k for k in keys if old["rows"].get(k) != new["rows"].get(k))
            if changed:
                effects.append({"table": name, "rows_changed": len(changed)})
        elif old["count"] != new["count"] and not mine:
            effects.append({"table": name, "rows_changed": abs(new["count"] - old["count"])})
    return effects


def planned_keys(steps: tuple[Step, ...], schema: LiveSchema) -> dict[str, set[str]]:
    """Per table, the snapshot keys of the rows a plan addresses."""
    keys: dict[str, set[str]] = {}
    for step in steps:
        table = schema.tables[step.table]
        # Keys compare as JSON: engineers give them as the images show them.
        values = [step.key[k] for k in table.primary_key]
        keys.setdefault(step.table, set()).add(json.dumps(values, sort_keys=True))
    return keys
