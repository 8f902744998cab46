"""The declarative change plan, validated against the live allowlisted schema.

What engineers send (``data.preview`` ``plan``)::

    {"updates": [{"table": "orders", "key": {"id": 7}, "set": {"status": "paid"},
                  "expect": {"status": "open"}}],            # expect is optional
     "inserts": [{"table": "orders", "row": {"id": 9, "status": "open", ...}}]}

Each update names one row by its full primary key and may not change the key; each
insert carries the whole key (generated keys would differ between preview and apply).
``deletes`` (``{"table", "key"}``) appear only in the inverse plans that ``data.undo``
builds. Rows per plan are capped by the source's ``row_limit`` (at most 1000).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.data.errors import InvalidPlan
from agent.data.schema import LiveSchema, LiveTable
from agent.data.values import check_scalar

KINDS = ("updates", "inserts", "deletes")


@dataclass(frozen=True)
class Step:
    """One row's change: ``kind`` is ``update``, ``insert`` or ``delete``."""

    kind: str
    table: str
    key: dict[str, Any]
    values: dict[str, Any]  # update: new values; insert: the whole row; delete: {}
    expect: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        if self.kind == "update":
            out: dict[str, Any] = {"table": self.table, "key": self.key, "set": self.values}
            if self.expect:
                out["expect"] = self.expect
            return out
        if self.kind == "insert":
            return {"table": self.table, "row": self.values}
        return {"table": self.table, "key": self.key}


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]

    def to_json(self) -> dict[str, Any]:
        return {kind: [s.to_json() for s in self.steps if s.kind + "s" == kind]
                for kind in KINDS if any(s.kind + "s" == kind for s in self.steps)}


def parse_plan(raw: Any, schema: LiveSchema, *, allow_deletes: bool = False,
               from_engineer: bool = False) -> Plan:
    """``raw`` as a plan on ``schema``; InvalidPlan naming the first fault.

    ``from_engineer``: a plan as an engineer sent it, which may not compare masked columns
    or address rows by a masked key (each refusal would answer a guess at the hidden
    value). The agent's own plans (an undo's inverse, a stored plan read back) may."""
    if not isinstance(raw, Mapping):
        raise InvalidPlan("plan must be an object")
    kinds = KINDS if allow_deletes else KINDS[:2]
    unknown = set(raw) - set(kinds)
    if unknown:
        raise InvalidPlan(f"plan: unknown key {', '.join(sorted(map(str, unknown)))[:200]}")
    steps = tuple(_step(kind[:-1], entry, schema, f"{kind}[{i}]", from_engineer)
                  for kind in kinds for i, entry in enumerate(_entries(raw, kind)))
    if not steps:
        raise InvalidPlan("plan changes nothing")
    if len(steps) > schema.source.row_limit:
        raise InvalidPlan(f"plan has {len(steps)} rows, over the limit of "
                          f"{schema.source.row_limit}")
    keys = [(s.table, tuple(sorted(s.key.items()))) for s in steps]
    if len(set(keys)) != len(keys):
        raise InvalidPlan("plan names a row twice")
    return Plan(steps)


def _entries(raw: Mapping[str, Any], kind: str) -> list[Any]:
    entries = raw.get(kind, [])
    if not isinstance(entries, list):
        raise InvalidPlan(f"plan.{kind} must be a list")
    return entries


def _step(kind: str, entry: Any, schema: LiveSchema, where: str, from_engineer: bool) -> Step:
    fields = {"update": {"table", "key", "set", "expect"}, "insert": {"table", "row"},
              "delete": {"table", "key"}}[kind]
    if not isinstance(entry, Mapping) or not set(entry) <= fields:
        raise InvalidPlan(f"{where}: an object with {', '.join(sorted(fields))}")
    table = writable_table(schema, entry.get("table"), where)
    if from_engineer and set(table.primary_key) & set(table.masked):
        # Whether a row with a guessed key exists would answer for the hidden value.
        raise InvalidPlan(f"{where}.table: its key is masked: rows cannot be addressed")
    if kind == "insert":
        row = _values(entry.get("row"), table, f"{where}.row")
        missing = set(table.primary_key) - set(row)
        if missing:
            raise InvalidPlan(f"{where}.row: the whole primary key is required")
        return Step(kind, table.name, {k: row[k] for k in table.primary_key}, row, {})
    key = _values(entry.get("key"), table, f"{where}.key")
    if set(key) != set(table.primary_key):
        raise InvalidPlan(f"{where}.key must name exactly the primary key "
                          f"({', '.join(table.primary_key)})")
    if kind == "delete":
        return Step(kind, table.name, key, {}, {})
    values = _values(entry.get("set"), table, f"{where}.set")
    if not values or set(values) & set(table.primary_key):
        raise InvalidPlan(f"{where}.set must change at least one column and not the key")
    expect = _values(entry.get("expect", {}), table, f"{where}.expect", allow_empty=True)
    if from_engineer and set(expect) & set(table.masked):
        # A refusal when the guess is wrong would confirm the right one: as data.query
        # refuses filters on masked columns.
        raise InvalidPlan(f"{where}.expect: masked columns cannot be compared")
    return Step(kind, table.name, key, values, expect)


def writable_table(schema: LiveSchema, name: Any, where: str) -> LiveTable:
    """The allowlisted, live, addressable table ``name``; InvalidPlan otherwise."""
    table = schema.tables.get(name) if isinstance(name, str) else None
    if table is None:
        raise InvalidPlan(f"{where}.table: no such allowlisted table")
    if not table.writable:
        raise InvalidPlan(f"{where}.table: rows cannot be addressed (primary key not allowed)")
    return table


def _values(raw: Any, table: LiveTable, where: str,
            allow_empty: bool = False) -> dict[str, Any]:
    if not isinstance(raw, Mapping) or (not raw and not allow_empty):
        raise InvalidPlan(f"{where} must be an object of column: value")
    unknown = [c for c in raw if c not in table.columns]
    if unknown:
        raise InvalidPlan(f"{where}: no such allowlisted column")
    return {c: check_scalar(v, f"{where}.{c}") for c, v in raw.items()}
