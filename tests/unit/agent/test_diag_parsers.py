"""Pure pieces of the diagnostics: systemctl output, search patterns, log presentation."""

from __future__ import annotations

import json

import pytest

from agent.diag import _grep, logs, services
from agent.diag._http import http_target
from agent.redact import MASK

JSON_UNITS = json.dumps([
    {"unit": "nginx.service", "load": "loaded", "active": "active", "sub": "running",
     "description": "A high performance web server"},
    {"unit": "backup.service", "load": "loaded", "active": "failed", "sub": "failed",
     "description": "Nightly backup"},
]).encode()
PLAIN_UNITS = (b"nginx.service  loaded active running A high performance web server\n"
               b"backup.service loaded failed failed  Nightly backup\n"
               b"odd.service    not-found inactive dead\n")


def test_systemctl_json_and_plain_give_the_same_units() -> None:
    from_json = services.parse_json(JSON_UNITS)
    from_plain = services.parse_plain(PLAIN_UNITS)
    assert from_json == from_plain[:2]
    assert from_json[1] == {"unit": "backup.service", "load": "loaded", "active": "failed",
                            "sub": "failed", "description": "Nightly backup"}
    assert from_plain[2] == {"unit": "odd.service", "load": "not-found", "active": "inactive",
                             "sub": "dead", "description": ""}


@pytest.mark.parametrize("output", [b"not json", b'{"unit": "x"}', b"[1, 2]"])
def test_systemctl_output_that_is_not_a_unit_list_is_refused(output: bytes) -> None:
    with pytest.raises(ValueError):
        services.parse_json(output)


@pytest.mark.parametrize("pattern", [
    "error", r"^\d{4}-\d\d-\d\dT", r"(fail|error): \w+", r"(?i)timeout", r"[(]+\)", r"(ab)+c",
    r"a{2,3}b*", r"(?P<code>5\d\d)", r"\\1",
])
def test_bounded_patterns_are_accepted(pattern: str) -> None:
    assert _grep.check_pattern(pattern) is None


@pytest.mark.parametrize(("pattern", "reason"), [
    (r"(a+)+$", "repeated group"), (r"(a|aa)*b", "repeated group"), (r"(x*y){2,}", "repeated group"),
    (r"((a)+b)*", "repeated group"), (r"(.*a){12}", "repeated group"), (r"(a)\1", "backreference"),
    (r"(?P<x>a)(?P=x)", "backreference"), (r"(?(1)a|b)", "backreference"),
    (r"a(?=b)", "lookahead"), (r"(?<!a)b", "lookahead"), ("a" * 201, "longer"),
    (r"[a-", "not a valid"), (r"a{99999999999999999999}", "repeat count or nesting too large"),
])
def test_risky_patterns_are_refused(pattern: str, reason: str) -> None:
    assert reason in (_grep.check_pattern(pattern) or "")


def test_control_characters_are_shown_in_caret_notation() -> None:
    assert logs.escape("a\x1b[31mred\x1b[0m\tb\x07\x7f") == "a^[[31mred^[[0m\tb^G^?"


def test_present_redacts_cuts_and_counts() -> None:
    raw = [b"fragment password=a", b"one", b"two password=b", b"x" * (logs.MAX_LINE_CHARS + 5),
           "caf\u00e9 \x1b".encode()]
    shown = logs.present(raw, 3, context=True)
    assert shown["lines"] == [f"two password={MASK}", "x" * logs.MAX_LINE_CHARS, "café ^["]
    assert (shown["redactions"], shown["lines_cut"], shown["line_count"]) == (1, 1, 3)
    assert logs.present([b"", b"only"], 10, context=True)["lines"] == ["only"]


def test_output_budget_keeps_the_newest_lines() -> None:
    lines = ["x" * 1000 for _ in range(1000)] + ["newest"]
    dropped = logs.fit(lines)
    assert dropped > 0 and lines[-1] == "newest"
    assert sum(len(json.dumps(line)) for line in lines) <= logs.OUTPUT_BUDGET


@pytest.mark.parametrize(("url", "expected"), [
    ("http://db.internal/x", ("db.internal", 80)), ("https://h:8443", ("h", 8443)),
    ("https://[::1]/", ("::1", 443)), ("ftp://h/", "must be an http:// or https:// URL"),
    ("https://u:p@h/", "must not carry credentials"), ("https://u@h/", "credentials"),
    ("http:///x", "with a host"), ("http://h:99999/", "not a valid URL"),
])
def test_http_target(url: str, expected: tuple[str, int] | str) -> None:
    target = http_target(url)
    if isinstance(expected, str):
        assert isinstance(target, str) and expected in target
    else:
        assert target == expected
