"""describe, query, preview, consent, apply and undo on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import dataclasses
import json
import threading
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ed25519

from agent.data.errors import (
    ChangeNotConsented,
    ChangeNotFound,
    InvalidPlan,
    PlanDrifted,
)
from agent.data.policy import TablePolicy
from agent.errors import InvalidParams
from tests.integration.agent.data.conftest import SECRET_EMAIL, Harness, raw_engine

FIX = {"updates": [{"table": "orders", "key": {"id": 10}, "set": {"status": "paid"},
                    "expect": {"status": "open"}},
                   {"table": "customers", "key": {"id": 1}, "set": {"credit": 20}}],
       "inserts": [{"table": "orders", "row": {"id": 13, "customer_id": 3, "status": "open",
                                               "total": "7.50"}}]}


def _write(h: Harness, sql: str) -> None:
    engine = raw_engine(h.source)
    with engine.begin() as conn:
        conn.exec_driver_sql(sql)
    engine.dispose()


def test_describe_shows_only_allowlisted_columns(harness: Harness) -> None:
    schema = harness.run("describe", {"source": "shop"})
    tables = {t["name"]: t for t in schema["tables"]}
    assert sorted(tables) == ["customers", "orders"]
    names = [c["name"] for c in tables["customers"]["columns"]]
    assert names == ["id", "name", "email", "credit"]  # "secret" exists but is not allowed
    assert [c["masked"] for c in tables["customers"]["columns"]] == [False, False, True, False]
    assert tables["customers"]["primary_key"] == ["id"] and tables["orders"]["writable"]


def test_query_filters_orders_limits_and_masks(harness: Harness) -> None:
    result = harness.run("query", {"source": "shop", "table": "customers",
                                   "where": [{"column": "credit", "op": ">=", "value": 5}],
                                   "order": [{"column": "credit", "desc": True}], "limit": 5})
    assert [r["name"] for r in result["rows"]] == ["Ada", "Cy"]
    assert result["rows"][0]["email"] == "***" and result["rows"][1]["email"] is None
    assert SECRET_EMAIL not in json.dumps(result)


@pytest.mark.parametrize("params", [
    {"table": "customers", "where": [{"column": "email", "op": "=", "value": SECRET_EMAIL}]},
    {"table": "customers", "order": [{"column": "email"}]},
    {"table": "customers", "columns": ["secret"]},
    {"table": "sqlite_master"},
    {"table": "orders", "limit": 101},
    {"table": "orders", "where": [{"column": "id", "op": "LIKE", "value": 1}]},
])
def test_query_refuses_what_is_not_allowed(harness: Harness, params: dict[str, Any]) -> None:
    with pytest.raises(InvalidParams):
        harness.run("query", {"source": "shop"} | params)


def test_preview_leaves_no_trace_and_masks_what_it_sends(harness: Harness) -> None:
    before = harness.content_hash()
    result = harness.preview(FIX)
    assert harness.content_hash() == before
    assert result["counts"] == {"updates": 2, "inserts": 1, "deletes": 0}
    rows = {(r["table"], json.dumps(r["key"])): r for r in result["rows"]}
    ada = rows[("customers", '{"id": 1}')]
    assert ada["before"]["credit"] == 10 and ada["after"]["credit"] == 20
    assert ada["before"]["email"] == "***"
    assert SECRET_EMAIL not in json.dumps(result)
    stored = harness.store.preview(result["digest"])
    assert stored is not None and SECRET_EMAIL in json.dumps(stored.images)  # kept locally
    assert rows[("orders", '{"id": 13}')]["before"] is None


def test_every_preview_is_its_own_change(harness: Harness) -> None:
    first, second = harness.preview(FIX), harness.preview(FIX)
    assert first["digest"] != second["digest"]  # same rows, each its own consent
    assert (first["rows"], first["counts"]) == (second["rows"], second["counts"])
    harness.consent(first["digest"])
    with pytest.raises(ChangeNotConsented, match="no-consent"):
        harness.apply(second["digest"])


def test_a_correction_undone_can_be_made_again(harness: Harness) -> None:
    for _ in range(2):  # change, undo, the same change again, undo again
        digest = harness.preview(FIX)["digest"]
        harness.consent(digest)
        assert harness.apply(digest)["status"] == "applied"
        undo = harness.run("undo", {"digest": digest})["digest"]
        harness.consent(undo)
        assert harness.apply(undo)["status"] == "applied"


def test_apply_with_consent_then_undo_round_trip(harness: Harness) -> None:
    original = harness.rows("orders"), harness.rows("customers")
    digest = harness.preview(FIX)["digest"]
    harness.consent(digest)
    assert harness.apply(digest)["status"] == "applied"
    assert harness.store.journal_state(digest) == "applied"
    orders = {r["id"]: r for r in harness.rows("orders")}
    assert orders["10"]["status"] == "paid" and float(orders["13"]["total"]) == 7.5
    undo = harness.run("undo", {"digest": digest})
    assert undo["undo_of"] == digest and undo["counts"]["deletes"] == 1
    harness.consent(undo["digest"])
    harness.apply(undo["digest"])
    assert (harness.rows("orders"), harness.rows("customers")) == original


def test_a_denial_holds_whatever_the_clock_says(harness: Harness) -> None:
    # The clock stands still: consent, denial and the second preview share one instant.
    digest = harness.preview(FIX)["digest"]
    harness.consent(digest)
    assert harness.store.set_status(digest, "denied", "no", only_from="pending")
    with pytest.raises(ChangeNotFound, match="denied"):
        harness.apply(digest)
    again = harness.preview(FIX)["digest"]  # asked anew: its own change, its own consent
    with pytest.raises(ChangeNotConsented, match="no-consent"):
        harness.apply(again)
    harness.consent(again)
    assert harness.apply(again)["status"] == "applied"


def test_a_change_to_a_masked_column_can_be_undone(harness: Harness) -> None:
    # The undo's own plan expects the masked value it puts back: the agent's plan, not a
    # guess from an engineer.
    original = harness.rows("customers")
    plan = {"updates": [{"table": "customers", "key": {"id": 1},
                         "set": {"email": "new@example.test"}}]}
    digest = harness.preview(plan)["digest"]
    harness.consent(digest)
    harness.apply(digest)
    undo = harness.run("undo", {"digest": digest})
    harness.consent(undo["digest"])
    harness.apply(undo["digest"])
    assert harness.rows("customers") == original


def test_apply_without_or_with_a_bad_consent_is_refused(harness: Harness) -> None:
    digest = harness.preview(FIX)["digest"]
    before = harness.content_hash()
    with pytest.raises(ChangeNotConsented, match="no-consent"):
        harness.apply(digest)
    harness.consent(digest, key=ed25519.Ed25519PrivateKey.generate())
    with pytest.raises(ChangeNotConsented, match="bad-signature"):
        harness.apply(digest)
    harness.consent(digest, ctx=dataclasses.replace(harness.ctx, grant_id="G-2"))
    with pytest.raises(ChangeNotConsented, match="wrong-grant-id"):
        harness.apply(digest)
    other = harness.preview({"updates": [{"table": "orders", "key": {"id": 11},
                                          "set": {"status": "void"}}]})["digest"]
    harness.consent(other)
    with pytest.raises(ChangeNotConsented):
        harness.apply(digest)
    assert harness.content_hash() == before


def test_expired_consent_and_expired_preview_are_refused(harness: Harness) -> None:
    digest = harness.preview(FIX)["digest"]
    harness.consent(digest, seconds=60)
    harness.clock.now += 61
    with pytest.raises(ChangeNotConsented, match="expired"):
        harness.apply(digest)
    harness.clock.now += 30 * 60
    harness.consent(digest)
    with pytest.raises(ChangeNotFound, match="expired"):
        harness.apply(digest)


def test_consent_is_single_use(harness: Harness) -> None:
    digest = harness.preview(FIX)["digest"]
    harness.consent(digest)
    harness.apply(digest)
    with pytest.raises(ChangeNotFound, match="applied"):
        harness.apply(digest)
    assert harness.store.consents(digest)[0].used_at is not None


def test_consent_for_another_engineer_key_is_refused(harness: Harness) -> None:
    digest = harness.preview(FIX)["digest"]
    harness.consent(digest)
    intruder = dataclasses.replace(harness.ctx, engineer_key_id="sha256:" + "cd" * 32)
    with pytest.raises(ChangeNotConsented, match="wrong-engineer-key-id"):
        harness.run("apply", {"digest": digest}, ctx=intruder)


def test_concurrent_writer_between_preview_and_apply_aborts(harness: Harness) -> None:
    digest = harness.preview(FIX)["digest"]
    harness.consent(digest)
    _write(harness, "UPDATE customers SET credit = 11 WHERE id = 1")
    changed = harness.content_hash()
    with pytest.raises(PlanDrifted, match="changed since the preview"):
        harness.apply(digest)
    assert harness.content_hash() == changed
    assert harness.store.journal_state(digest) is None
    # Its consent is spent: the change is over (aborted, why), no longer shown as pending.
    stored = harness.store.preview(digest)
    assert stored is not None and (stored.status, stored.detail) == (
        "aborted", "rows changed since the preview: nothing was changed")


def _consented_with_a_writer_at(harness: Harness, point: str, sql: str) -> str:
    """A consented preview of FIX whose apply meets another client's commit of ``sql`` at
    ``point``; its digest."""
    digest = harness.preview(FIX)["digest"]
    harness.consent(digest)
    harness.ops = harness.make_ops(
        checkpoint=lambda at: _write(harness, sql) if at == point else None)
    return digest


def test_another_writer_s_commit_during_the_apply_is_no_side_effect_of_it(
        server_harness: Harness) -> None:
    harness = server_harness
    # The apply's two snapshots must see the database as of one moment (plus its own
    # changes), or that commit reads as a side effect of the change and a good apply fails.
    digest = _consented_with_a_writer_at(
        harness, "locked", "UPDATE orders SET status = 'shipped' WHERE id = 11")
    assert harness.apply(digest)["status"] == "applied"
    statuses = {r["id"]: r["status"] for r in harness.rows("orders")}
    assert statuses == {"10": "paid", "11": "shipped", "12": "open", "13": "open"}


@pytest.mark.parametrize("sql", [
    "UPDATE orders SET status = 'void' WHERE id = 10",  # a row the change updates
    "INSERT INTO orders (id, customer_id, status) VALUES (13, 1, 'void')",  # one it inserts
])
def test_a_row_changed_after_the_apply_s_snapshot_makes_it_refuse(server_harness: Harness,
                                                                   sql: str) -> None:
    harness = server_harness
    # At "read" the tables are read, and the rows to change are not locked yet.
    digest = _consented_with_a_writer_at(harness, "read", sql)
    with pytest.raises(PlanDrifted, match="rows changed since the preview"):
        harness.apply(digest)
    assert "void" in {r["status"] for r in harness.rows("orders")}
    stored = harness.store.preview(digest)
    assert stored is not None and stored.status == "aborted"
    assert harness.store.journal_state(digest) is None


def test_undo_after_drift_is_refused_with_three_way_view(harness: Harness) -> None:
    digest = harness.preview(FIX)["digest"]
    harness.consent(digest)
    harness.apply(digest)
    _write(harness, "UPDATE customers SET credit = 99, email = 'new@x.test' WHERE id = 1")
    refused = harness.run("undo", {"digest": digest})
    assert refused["status"] == "refused"
    [row] = refused["rows"]
    assert (row["before"]["credit"], row["after"]["credit"], row["current"]["credit"]) == \
        (10, 20, 99)
    assert row["current"]["email"] == "***" and "new@x.test" not in json.dumps(refused)


@pytest.mark.parametrize("plan,message", [
    ({"updates": [{"table": "orders", "key": {"id": 99}, "set": {"status": "x"}}]}, "no row"),
    ({"updates": [{"table": "orders", "key": {"id": 10}, "set": {"status": "x"},
                   "expect": {"status": "paid"}}]}, "expected values"),
    ({"updates": [{"table": "orders", "key": {"id": 10}, "set": {"id": 5}}]}, "not the key"),
    ({"updates": [{"table": "orders", "key": {"status": "open"}, "set": {"total": 1}}]},
     "primary key"),
    ({"inserts": [{"table": "orders", "row": {"id": 10, "customer_id": 1, "status": "x"}}]},
     "exists already"),
    ({"inserts": [{"table": "orders", "row": {"customer_id": 1, "status": "x"}}]},
     "whole primary key"),
    ({"deletes": [{"table": "orders", "key": {"id": 10}}]}, "unknown key"),
    ({"updates": [{"table": "customers", "key": {"id": 1}, "set": {"secret": "x"}}]},
     "allowlisted column"),
    ({}, "changes nothing"),
    # Comparing against a masked value would tell, guess by guess, what it is.
    ({"updates": [{"table": "customers", "key": {"id": 1}, "set": {"credit": 1},
                   "expect": {"email": "hidden-7f3a@example.test"}}]},
     "masked columns cannot be compared"),
])
def test_bad_plans_are_refused_and_change_nothing(harness: Harness, plan: dict[str, Any],
                                                  message: str) -> None:
    before = harness.content_hash()
    with pytest.raises(InvalidPlan, match=message):
        harness.preview(plan)
    assert harness.content_hash() == before


def test_plan_over_the_row_limit_is_refused(harness: Harness) -> None:
    plan = {"updates": [{"table": "orders", "key": {"id": i}, "set": {"status": "x"}}
                        for i in range(1000, 1101)]}
    with pytest.raises(InvalidPlan, match="over the limit of 100"):
        harness.preview(plan)


def test_writer_holding_a_row_lock_during_apply_makes_it_fail_cleanly(
        harness: Harness) -> None:
    if harness.source.engine == "sqlite":
        pytest.skip("SQLite has no row locks: the busy timeout is covered elsewhere")
    digest = harness.preview(FIX)["digest"]
    harness.consent(digest)
    engine = raw_engine(harness.source)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE orders SET status = 'held' WHERE id = 10"))
            held.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(5)
    try:
        with pytest.raises(Exception, match="refused the statement"):
            harness.apply(digest)
    finally:
        release.set()
        thread.join()
        engine.dispose()
    assert harness.store.journal_state(digest) is None


def test_a_table_whose_key_is_masked_cannot_be_addressed(harness: Harness) -> None:
    # Whether a row exists under a guessed key would reveal the masked value.
    tables = (TablePolicy("orders", ("id", "customer_id", "status", "total"), ("id",)),)
    (harness.home / "masked").mkdir()
    masked_key = Harness(dataclasses.replace(harness.source, tables=tables),
                         harness.home / "masked")
    try:
        for plan in ({"updates": [{"table": "orders", "key": {"id": 10}, "set": {"total": 1}}]},
                     {"inserts": [{"table": "orders",
                                   "row": {"id": 10, "customer_id": 1, "status": "x"}}]}):
            with pytest.raises(InvalidPlan, match="its key is masked"):
                masked_key.preview(plan)
    finally:
        masked_key.store.close()
        masked_key.ops.close()


_TRIGGER = {  # after an update of an order, another customer's credit changes too
    "sqlite": ["CREATE TRIGGER bump AFTER UPDATE ON ORDERS BEGIN "  # spelt as SQLite keeps it
               "UPDATE customers SET credit = credit + 1 WHERE id = 2; END"],
    "postgresql": ["CREATE FUNCTION bump() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                   "UPDATE customers SET credit = credit + 1 WHERE id = 2; RETURN NEW; END $$",
                   "CREATE TRIGGER bump AFTER UPDATE ON orders FOR EACH ROW "
                   "EXECUTE FUNCTION bump()"],
    "mysql": ["CREATE TRIGGER bump AFTER UPDATE ON orders FOR EACH ROW "
              "UPDATE customers SET credit = credit + 1 WHERE id = 2"],
}


def test_a_trigger_added_after_the_preview_makes_the_apply_refuse(harness: Harness) -> None:
    plan = {"updates": [{"table": "orders", "key": {"id": 10}, "set": {"status": "shipped"}}]}
    digest = harness.preview(plan)["digest"]
    harness.consent(digest)
    for sql in _TRIGGER[harness.source.engine]:
        _write(harness, sql)
    before = harness.content_hash()
    with pytest.raises(PlanDrifted, match="schema changed since the preview"):
        harness.apply(digest)
    assert harness.content_hash() == before
    # Previewed with the trigger, its side effect is shown, then applied as shown.
    shown = harness.preview(plan)
    assert shown["side_effects"] == [{"table": "customers", "rows_changed": 1}]
    harness.consent(shown["digest"])
    assert harness.apply(shown["digest"])["status"] == "applied"


_REBODY = {  # the same trigger, doing something else from now on
    "sqlite": ["DROP TRIGGER bump", "CREATE TRIGGER bump AFTER UPDATE ON ORDERS BEGIN "
               "UPDATE customers SET credit = credit + 5 WHERE id = 2; END"],
    "postgresql": ["CREATE OR REPLACE FUNCTION bump() RETURNS trigger LANGUAGE plpgsql AS $$ "
                   "BEGIN UPDATE customers SET credit = credit + 5 WHERE id = 2; RETURN NEW; "
                   "END $$"],
    "mysql": ["DROP TRIGGER bump", "CREATE TRIGGER bump AFTER UPDATE ON orders FOR EACH ROW "
              "UPDATE customers SET credit = credit + 5 WHERE id = 2"],
}


def test_a_trigger_whose_body_changed_after_the_preview_makes_the_apply_refuse(
        harness: Harness) -> None:
    for sql in _TRIGGER[harness.source.engine]:
        _write(harness, sql)
    plan = {"updates": [{"table": "orders", "key": {"id": 10}, "set": {"status": "shipped"}}]}
    digest = harness.preview(plan)["digest"]
    harness.consent(digest)
    for sql in _REBODY[harness.source.engine]:
        _write(harness, sql)
    with pytest.raises(PlanDrifted, match="schema changed since the preview"):
        harness.apply(digest)
