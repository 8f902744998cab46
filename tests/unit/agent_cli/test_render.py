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


def test_a_config_diff_keeps_its_lines_and_shows_the_engineers_values_inert() -> None:
    from io import StringIO

    from rich.console import Console

    from agent.cli._changes import _print_config

    screen = StringIO()
    out = Console(file=screen, width=100, markup=False, soft_wrap=True)
    value = "ab\u202ecd\u2028x\x1b[8m"
    _print_config(out, {"changes": [{"key": "NAME", "old": "ab", "new": value}],
                        "diff": f"-NAME=ab\n+NAME={value}\n"})
    shown = screen.getvalue()
    assert not {"\u202e", "\u2028", "\x1b"} & set(shown)
    assert "-NAME=ab\n+NAME=ab<U+202E>cd<U+2028>x^[[8m\n" in shown


@pytest.mark.parametrize("after", [
    "c-1 (normal) " + " " * 150 + "customer=attacker@example.com",  # Rich dropped columns
    "c-1 (normal) " + "\u2026 " * 60 + "and then customer=attacker@example.com",
    "short", "x" * 40, "y" * 300,
])
@pytest.mark.parametrize("width", [60, 80, 100])
def test_a_table_never_drops_or_cuts_what_the_customer_approves(after: str,
                                                                width: int) -> None:
    from io import StringIO

    from rich.console import Console

    from agent.cli._render import print_table

    screen = StringIO()
    out = Console(file=screen, width=width, markup=False, soft_wrap=True, force_terminal=True,
                  color_system=None)
    row = ('update orders {"id": 1}', "customer", '"c-1"', after)
    print_table(out, "", ("Row", "Column", "Before", "After"), [row])
    shown = "".join(screen.getvalue().split())  # whatever the wrapping, nothing is missing
    for cell in row:
        assert "".join(cell.split()) in shown


@pytest.mark.parametrize(("columns", "row"), [
    (("Row", "Column", "Before", "After"),
     ('update orders {"id": 1}', "status", '"open"', '"shipped to the customer on 2025-01-02"')),
    (("Request", "Case", "Engineer", "Engineer key", "Scopes", "Duration", "Reason",
      "Received", "Status"),
     ("R-0001", "C-0001", "alice", "sha256:abababababab", "diag.read, data.write", "2h",
      "the web shop answers slowly since the last deployment", "2026-11-27T11:00:00+00:00",
      "pending")),
    (("Key", "Before", "After"), ("server.port", "8080", "9090")),
])
def test_at_every_width_every_character_of_every_cell_is_shown(columns: tuple[str, ...],
                                                                row: tuple[str, ...]) -> None:
    from collections import Counter
    from io import StringIO

    from rich.console import Console

    from agent.cli._render import print_table

    wanted = Counter(c for text in (*columns, *row) for c in text if not c.isspace())
    for width in range(40, 161):
        screen = StringIO()
        out = Console(file=screen, width=width, markup=False, soft_wrap=True,
                      color_system=None)
        print_table(out, "", columns, [row])
        shown = Counter(c for c in screen.getvalue() if not c.isspace())
        assert not wanted - shown, (width, wanted - shown)
