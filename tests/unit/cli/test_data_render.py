"""How rmctl shows a previewed data change to the engineer."""

from __future__ import annotations

import pytest

from controller.cli.data import _show_change


def test_a_change_to_a_masked_column_is_shown_as_one(capsys: pytest.CaptureFixture[str]) -> None:
    _show_change({
        "rows": [{"kind": "update", "table": "customers", "key": {"id": 1},
                  "before": {"id": 1, "email": "***", "credit": 10},
                  "after": {"id": 1, "email": "***", "credit": 10}}],
        "counts": {"updates": 1, "inserts": 0, "deletes": 0}, "side_effects": [],
        "expires_at": 1_800_000_000, "digest": "sha256:" + "ab" * 32})
    shown = capsys.readouterr()
    text = shown.out + shown.err
    assert "email" in text and "credit" not in text  # the unchanged column is left out
    assert "change: none" not in text
    assert '"***": a masked column; its values stay on the agent' in text
