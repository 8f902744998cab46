"""How rmagent shows times: local time with this host's UTC offset, as rmctl does."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from agent.cli._render import local_time


@pytest.fixture
def one_hour_east(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "XST-1")  # POSIX form: no zone database needed
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("one_hour_east")
def test_times_carry_the_offset_of_this_hosts_zone() -> None:
    assert local_time(1_800_000_000) == "2027-01-15T09:00:00+01:00"


def test_never_is_a_dash() -> None:
    assert local_time(0) == "-"
