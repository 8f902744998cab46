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


def test_what_others_sent_reaches_the_customer_inert() -> None:
    from io import StringIO

    from rich.console import Console

    from agent.cli._render import key_value, print_table

    screen = StringIO()
    out = Console(file=screen, width=200, markup=False)
    spoof = "slow\x1b[2A\x1b[G Scopes diag.read\nfake line \u202etxt"
    print_table(out, "Requests", ("Request", "Reason"), [("R-1", spoof)])
    out.print(key_value("", [("reason", spoof)]))
    shown = screen.getvalue()
    assert "\x1b" not in shown and "\u202e" not in shown and "\nfake line" not in shown
    assert shown.count("^[[2A^[[G") == 2 and shown.count("<U+202E>") == 2
