"""Keys are checked against the allowlist before any file is opened; digests bind everything."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.params import Change, ChangeRejected, parse, preview
from agent.params._preview import digest

# The path does not exist: a refusal proves that nothing was opened to decide it.
CONFIG = parse({"files": [{"name": "app", "path": "/nonexistent/app.toml", "format": "toml",
                           "keys": ["server.port"]}]})


@settings(deadline=None)
@given(st.dictionaries(st.text(max_size=40), st.integers(), min_size=1, max_size=3))
def test_keys_outside_the_allowlist_are_refused_before_reading(changes: dict[str, int]) -> None:
    if set(changes) <= {"server.port"}:
        return
    with pytest.raises(ChangeRejected, match="not an allowlisted key"):
        preview(CONFIG, "app", changes)


def test_too_many_changes_are_refused() -> None:
    with pytest.raises(ChangeRejected, match="at most 100 keys"):
        preview(CONFIG, "app", {f"k{i}": i for i in range(101)})


def test_the_digest_binds_name_texts_and_changes() -> None:
    change = (Change("server.port", 80, 81),)
    base = digest("app", "a" * 64, "b" * 64, change)
    assert base == digest("app", "a" * 64, "b" * 64, change)
    assert base.startswith("sha256:") and len(base) == 71  # the form change consents sign
    others = {digest("other", "a" * 64, "b" * 64, change),
              digest("app", "c" * 64, "b" * 64, change),
              digest("app", "a" * 64, "c" * 64, change),
              digest("app", "a" * 64, "b" * 64, (Change("server.port", 80, 82),)),
              digest("app", "a" * 64, "b" * 64, (Change("server.port", 80, "81"),))}
    assert base not in others and len(others) == 5
