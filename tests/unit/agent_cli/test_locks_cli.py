"""`rmagent locks` tells the customer when the kept lock set cannot be read: the agent then
refuses every operation until the controller's set arrives."""

from __future__ import annotations

from pathlib import Path

from agent.locks import LOCKS_FILE

from .conftest import Invoke


def test_an_unreadable_lock_set_is_shown_as_refusing_everything(rmagent: Invoke,
                                                                home: Path) -> None:
    (home / LOCKS_FILE).write_text("{not json")
    result = rmagent("locks")
    assert result.exit_code != 0
    said = " ".join(result.output.split())
    assert "refuses every operation (locks-unknown)" in said, said
