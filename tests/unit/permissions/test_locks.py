"""Lock targets and which locks cover what (pure)."""

from __future__ import annotations

import pytest

from permissions.locks import BadLockTarget, Lock, Subject, covering, parse_target

KEY = "sha256:" + "ab" * 32


@pytest.mark.parametrize(("text", "parsed"), [
    ("agent:web-1", ("agent", "web-1")), ("grant:G-1a2b", ("grant", "G-1a2b")),
    ("case:C-0001", ("case", "C-0001")), (f"engineer-key:{KEY}", ("engineer-key", KEY)),
])
def test_targets_parse(text: str, parsed: tuple[str, str]) -> None:
    assert parse_target(text) == parsed


@pytest.mark.parametrize("text", [
    "", "web-1", "host:web-1", "agent:", "agent:-x", "agent:a b", "engineer-key:alice",
    "engineer-key:sha256:ABCD", "case:" + "x" * 200,
])
def test_bad_targets_are_refused_with_a_reason(text: str) -> None:
    with pytest.raises(BadLockTarget):
        parse_target(text)


def test_a_lock_covers_its_target_while_in_force() -> None:
    subject = Subject(agent_id="web-1", grant_id="G-1", case_id="C-1", engineer_key_id=KEY)
    locks = [Lock("L-1", "grant:G-2"), Lock("L-2", "case:C-1", expires_at=2000.0)]
    assert covering(locks, subject, 1999.0) == locks[1]
    assert covering(locks, subject, 2000.0) is None  # expired
    for target in ("agent:web-1", "grant:G-1", f"engineer-key:{KEY}"):
        assert covering([Lock("L-3", target)], subject, 0.0) is not None
    assert covering([Lock("L-4", "agent:web-2")], subject, 0.0) is None
    # An empty field touches nothing: no lock matches "grant:" by accident.
    assert covering([Lock("L-5", "grant:G-1")], Subject(agent_id="web-1"), 0.0) is None
