"""Hostile names and values: rejected or bound, never executed as SQL; previews leave no trace."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.errors import InvalidParams, OperationFailed
from tests.integration.agent.data.conftest import Harness

# Quotes, comment starts, NUL, look-alikes (modifier apostrophe, fullwidth quote,
# semicolon and "select", dotless i), a right-to-left override.
NASTY = ["'", '"', ";", "--", "/*", "\x00", "\\", "`", "\u02bc", "\uff07", "\uff1b",
         "\uff53\uff45\uff4c\uff45\uff43\uff54", "DROP TABLE orders", "' OR '1'='1", "id",
         "orders", "\u202e", "\u0131", "\u00e9"]
names = st.one_of(st.sampled_from(NASTY),
                  st.lists(st.sampled_from([*NASTY, "a", "_", " "]), min_size=1,
                           max_size=8).map("".join),
                  st.builds(lambda n: "x" * n, st.integers(60, 5000)))
values = st.one_of(names, st.text(max_size=300), st.integers(-(2**31), 2**31 - 1))
HOSTILE = settings(max_examples=15, deadline=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture])


TABLES = ("orders", "customers")
COLUMNS = ("id", "status", "total", "customer_id")


@HOSTILE
@given(table=names, column=names, value=values)
def test_hostile_identifiers_are_refused(harness: Harness, table: str, column: str,
                                         value: Any) -> None:
    before = harness.content_hash()
    previews = [(table in TABLES, {"updates": [{"table": table, "key": {"id": 10},
                                                "set": {"status": value}}]}),
                (column in COLUMNS, {"updates": [{"table": "orders", "key": {"id": 10},
                                                  "set": {column: value}}]}),
                (column in COLUMNS, {"inserts": [{"table": "orders",
                                                  "row": {"id": 20, column: value}}]})]
    for real, plan in previews:
        _refused_unless(real, lambda plan=plan: harness.preview(plan))
    queries = [(table in TABLES, {"table": table}),
               (column in COLUMNS, {"table": "orders", "columns": [column]}),
               (column in COLUMNS, {"table": "orders",
                                    "where": [{"column": column, "op": "=", "value": 1}]})]
    for real, params in queries:
        _refused_unless(real, lambda params=params: harness.run(
            "query", {"source": "shop"} | params))
    assert harness.content_hash() == before


def _refused_unless(real: bool, call: Any) -> None:
    """A name that is not allowlisted is always refused as invalid, before any SQL."""
    try:
        call()
    except InvalidParams:
        return
    except OperationFailed:
        assert real  # only a real name can reach the database
        return
    assert real


@HOSTILE
@given(value=values, where=values)
def test_hostile_values_are_bound_exactly_or_refused(harness: Harness, value: Any,
                                                     where: Any) -> None:
    before = harness.content_hash()
    plan = {"updates": [{"table": "customers", "key": {"id": 2}, "set": {"name": value}}]}
    try:
        result = harness.preview(plan)
    except (InvalidParams, OperationFailed):
        pass  # refused by the plan checks or by the database (NUL, too long, wrong type)
    else:
        [row] = result["rows"]
        assert str(row["after"]["name"]) == str(value)  # stored as given, text affinity
    try:
        found = harness.run("query", {"source": "shop", "table": "customers",
                                      "where": [{"column": "name", "op": "=", "value": where}]})
    except (InvalidParams, OperationFailed):
        pass
    else:
        assert all(r["name"] == str(where) or harness.source.engine == "mysql"
                   for r in found["rows"])
    assert harness.content_hash() == before
