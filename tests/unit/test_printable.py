"""What both CLIs show of others' text, against the rule for text meant for people."""

from __future__ import annotations

from permissions import is_plain_text
from rmaint.text import printable


def test_every_character_the_rule_refuses_is_shown_escaped_and_nothing_else() -> None:
    for code in range(0x10000):
        char = chr(code)
        if char == "\t":  # tables keep tabs; statements refuse them
            continue
        assert (printable(char) != char) == (not is_plain_text(char)), hex(code)


def test_escaping_is_idempotent_and_keeps_every_script() -> None:
    text = "slow\x1b[2A\n\u202etxt\u200b — 遅い ✓"
    shown = printable(text)
    assert shown == "slow^[[2A^J<U+202E>txt<U+200B> — 遅い ✓"
    assert printable(shown) == shown
