"""``data.describe`` and ``data.query``: structured reads, masked columns masked.

``data.query`` params::

    {"source": "shop", "table": "orders", "columns": ["id", "status"],   # default: all
     "where": [{"column": "status", "op": "=", "value": "open"}],         # ANDed
     "order": [{"column": "id", "desc": false}], "limit": 50}             # <= row_limit

Filters and ordering may not use masked columns: comparing against a hidden value would
reveal it one guess at a time.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from agent.data.errors import DataUnavailable, InvalidPlan
from agent.data.policy import DataSourcePolicy
from agent.data.schema import LiveSchema, LiveTable, reflect
from agent.data.values import check_scalar, image, masked, to_db

OPS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge}
MAX_FILTERS = 16


@dataclass(frozen=True)
class Query:
    table: str
    columns: tuple[str, ...]
    where: tuple[tuple[str, str, Any], ...]
    order: tuple[tuple[str, bool], ...]
    limit: int


def describe(engine: sa.Engine, source: DataSourcePolicy) -> dict[str, Any]:
    with _connection(engine) as conn, conn.begin():
        schema = reflect(conn, source)
    return {"source": source.name, "engine": source.engine, "row_limit": source.row_limit,
            "schema_fingerprint": schema.fingerprint(),
            "tables": [t.describe() for _, t in sorted(schema.tables.items())]}


def run_query(engine: sa.Engine, source: DataSourcePolicy, raw: Mapping[str, Any]) -> dict[str, Any]:
    with _connection(engine) as conn, conn.begin():
        schema = reflect(conn, source)
        query = parse_query(raw, schema)
        table = schema.tables[query.table]
        rows = conn.execute(_select(table, query)).mappings().all()
    hide = table.masked
    return {"source": source.name, "table": table.name, "columns": list(query.columns),
            "rows": [masked(image(r), hide) for r in rows], "count": len(rows),
            "masked": [c for c in query.columns if c in hide]}


def parse_query(raw: Mapping[str, Any], schema: LiveSchema) -> Query:
    name = raw.get("table")
    table = schema.tables.get(name) if isinstance(name, str) else None
    if table is None:
        raise InvalidPlan("data.query: table: no such allowlisted table")
    columns = _columns(raw.get("columns", list(table.columns)), table)
    where = tuple(_filter(f, table) for f in _list(raw, "where", MAX_FILTERS))
    order = tuple(_order(o, table) for o in _list(raw, "order", 8))
    limit = raw.get("limit", schema.source.row_limit)
    if isinstance(limit, bool) or not isinstance(limit, int) \
            or not 0 < limit <= schema.source.row_limit:
        raise InvalidPlan(f"data.query: limit must be from 1 to {schema.source.row_limit}")
    return Query(table.name, columns, where, order, limit)


def _select(table: LiveTable, query: Query) -> sa.Select[Any]:
    cols = table.table.columns
    statement = sa.select(*(cols[c] for c in query.columns))
    for name, op, value in query.where:
        statement = statement.where(OPS[op](cols[name], to_db(cols[name], value)))
    order = [cols[c].desc() if desc else cols[c].asc() for c, desc in query.order]
    order += [cols[k].asc() for k in table.primary_key if table.writable]  # stable pages
    return statement.order_by(*order).limit(query.limit)


def _columns(raw: Any, table: LiveTable) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw or not all(c in table.columns for c in raw
                                                         if isinstance(c, str)) \
            or not all(isinstance(c, str) for c in raw):
        raise InvalidPlan("data.query: columns: no such allowlisted column")
    return tuple(dict.fromkeys(raw))


def _filter(raw: Any, table: LiveTable) -> tuple[str, str, Any]:
    if not isinstance(raw, Mapping) or set(raw) != {"column", "op", "value"} \
            or raw["op"] not in OPS:
        raise InvalidPlan("data.query: where entries are {column, op, value}; op one of "
                          + " ".join(OPS))
    column = _visible(raw["column"], table, "where")
    return column, raw["op"], check_scalar(raw["value"], f"data.query: where.{column}")


def _order(raw: Any, table: LiveTable) -> tuple[str, bool]:
    if not isinstance(raw, Mapping) or not set(raw) <= {"column", "desc"} \
            or not isinstance(raw.get("desc", False), bool):
        raise InvalidPlan("data.query: order entries are {column, desc}")
    return _visible(raw.get("column"), table, "order"), bool(raw.get("desc", False))


def _visible(name: Any, table: LiveTable, where: str) -> str:
    if not isinstance(name, str) or name not in table.columns:
        raise InvalidPlan(f"data.query: {where}: no such allowlisted column")
    if name in table.masked:
        raise InvalidPlan(f"data.query: {where}: masked columns cannot be compared or sorted")
    return name


def _list(raw: Mapping[str, Any], key: str, limit: int) -> list[Any]:
    value = raw.get(key, [])
    if not isinstance(value, list) or len(value) > limit:
        raise InvalidPlan(f"data.query: {key} must be a list of at most {limit}")
    return value


def _connection(engine: sa.Engine) -> sa.Connection:
    try:
        return engine.connect()
    except sa.exc.SQLAlchemyError as exc:
        raise DataUnavailable("the data source cannot be reached") from exc
