"""Triggers and cascades show in the preview as side effects; the preview leaves no trace."""

from __future__ import annotations

from tests.integration.agent.data.conftest import Harness, raw_engine


def test_trigger_side_effect_is_reported_and_rolled_back(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    engine = raw_engine(h.source)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TRIGGER paid AFTER UPDATE OF status ON orders WHEN NEW.status = 'paid' "
            "BEGIN UPDATE customers SET credit = credit + 1 WHERE id = NEW.customer_id; END")
    engine.dispose()
    before = h.content_hash()
    result = h.preview({"updates": [{"table": "orders", "key": {"id": 12},
                                     "set": {"status": "paid"}}]})
    assert result["side_effects"] == [{"table": "customers", "rows_changed": 1}]
    assert h.content_hash() == before


def test_plain_change_has_no_side_effects(sqlite_harness: Harness) -> None:
    result = sqlite_harness.preview({"updates": [{"table": "orders", "key": {"id": 12},
                                                  "set": {"status": "paid"}}]})
    assert result["side_effects"] == []
