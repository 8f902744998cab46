"""Customer redaction patterns: checked at load, linear at run, counted by name."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from agent import config as c
from agent.diag import policy
from agent.redact import MASK, LineRedactor, redact_command, redact_line
from agent.redact_custom import CustomPattern, CustomRedaction, PatternInvalid

ROOT = Path(__file__).resolve().parents[3]
ACME = "ACME-12345678"


def patterns(*entries: object) -> CustomRedaction:
    return policy.parse({"redact_patterns": list(entries)}).redact_patterns


def test_patterns_parse_with_and_without_names_and_round_trip() -> None:
    config = policy.parse({"redact_patterns": [
        "ACME-[0-9]{8}", {"name": "ticket", "pattern": "TCK/[0-9]+"}, {"pattern": "zz[0-9]+"}]})
    assert config.redact_patterns.labels() == (
        "diag.redact_patterns[0]", "ticket", "diag.redact_patterns[2]")
    table = policy.to_toml(config)
    assert table["redact_patterns"] == ["ACME-[0-9]{8}", {"name": "ticket", "pattern": "TCK/[0-9]+"},
                                        "zz[0-9]+"]
    assert policy.parse(table) == config
    assert "redact_patterns" not in policy.to_toml(policy.parse({}))


@pytest.mark.parametrize(("entry", "message"), [
    (r"(\w+)=\1", r"diag.redact_patterns\[1\] \('\(\\\\w\+\)=\\\\1'\): not a usable RE2 pattern"),
    ("secret(?=x)", r"\[1\] \('secret\(\?=x\)'\): not a usable RE2 pattern"),
    ("(?<!x)secret", r"\[1\] .*not a usable RE2 pattern"),
    ("ACME-[0-9", r"\[1\] \('ACME-\[0-9'\): not a usable RE2 pattern .*missing \]"),
    ("a{2000}", r"\[1\] .*invalid repetition size"),
    ("((((a{100}){100}){100}){100})", r"\[1\] .*not a usable RE2 pattern"),
    ("x*", r"\[1\] \('x\*'\): matches the empty string"),
    ("", r"\[1\] \(''\): a pattern is 1 to 1000 characters"),
    ("a" * 1001, r"\[1\] .*a pattern is 1 to 1000 characters"),
    ({"name": "bad name", "pattern": "x"}, r"\[1\] \('x'\): name must be"),
    ({"name": "n", "pattern": "x", "flags": "i"}, r"\[1\] must be a pattern string or a table"),
    (42, r"\[1\] must be a pattern string"),
    ({"name": "first", "pattern": "y"}, "duplicate name first"),
])
def test_unusable_patterns_are_config_errors_naming_them(entry: object, message: str) -> None:
    with pytest.raises(policy.DiagConfigInvalid, match=message):
        policy.parse({"redact_patterns": [{"name": "first", "pattern": "ok"}, entry]})


def test_an_invalid_pattern_in_agent_toml_is_refused_at_load(tmp_path: Path) -> None:
    (tmp_path / "agent.toml").write_text(
        "[agent]\nid='web-1'\ntrust_domain='example.test'\n"
        "[diag]\nredact_patterns = ['ACME-[0-9]{8}', '(a+)\\1']\n")
    with pytest.raises(c.ConfigInvalid, match=r"agent.toml: diag.redact_patterns\[1\]"):
        c.load(tmp_path)


def test_patterns_survive_saving_agent_toml(tmp_path: Path) -> None:
    diag = policy.parse({"redact_patterns": [{"name": "acme", "pattern": "ACME-[0-9]{8}"},
                                             "TCK/[0-9]+"]})
    config = c.AgentConfig(id="web-1", trust_domain="example.test", diag=diag)
    c.save(tmp_path, config)
    assert c.load(tmp_path).diag.redact_patterns == diag.redact_patterns
    assert c.load(tmp_path).diag.redact_patterns.labels() == ("acme", "diag.redact_patterns[1]")


def test_command_lines_hide_matches_and_count_them_by_name() -> None:
    custom = patterns({"name": "acme", "pattern": "ACME-[0-9]{8}"}, "TCK/[0-9]+")
    redacted = redact_command(["tool", f"--ref={ACME}", "--password", "pw", "TCK/77",
                               f"{ACME},{ACME}"], custom)
    assert redacted.args == ("tool", "--ref=***", "--password", "***", "***", "***,***")
    assert redacted.custom_counts == Counter({"acme": 3, "diag.redact_patterns[1]": 1})
    assert redacted.redactions == 1 + 4  # the built-in --password, and the custom four
    assert redact_command(["tool", f"--ref={ACME}"]).args == ("tool", f"--ref={ACME}")


def test_log_lines_hide_matches_and_count_them_across_lines() -> None:
    custom = patterns({"name": "acme", "pattern": "(?i)acme-[0-9]{8}"})
    redactor = LineRedactor(custom)
    assert redactor.redact(f"order {ACME} password=x") == ("order *** password=***", 2)
    assert redactor.redact("order acme-00000000 ok") == ("order *** ok", 1)
    assert redactor.redact("nothing here") == ("nothing here", 0)
    assert redactor.take_custom_counts() == Counter({"acme": 2})
    assert redactor.custom_counts == Counter()
    assert redact_line(f"x {ACME}", custom) == ("x ***", 1)


def test_undecodable_bytes_do_not_stop_the_patterns() -> None:
    custom = patterns({"name": "acme", "pattern": "ACME-[0-9]{8}"})
    raw = b"--ref=\xff" + ACME.encode() + b" \xc3\xa9"
    arg = raw.decode(errors="surrogateescape")  # as command lines are decoded
    redacted = redact_command(["tool", arg, "\ud800"], custom)
    assert redacted.args == ("tool", "--ref=\ufffd*** \u00e9", "\ufffd")
    assert redacted.custom_counts == Counter({"acme": 1})
    assert LineRedactor(custom).redact(f"\u00e9 {ACME} \U0001f600") == ("\u00e9 *** \U0001f600", 1)


def test_masks_already_in_place_are_not_counted_again() -> None:
    custom = patterns({"name": "stars", "pattern": r"\*+"}, {"name": "pw", "pattern": "pw=[^ ]+"})
    redactor = LineRedactor(custom)
    # The built-in rule hides the password; "pw=***" then matches the custom rule again.
    assert redactor.redact("password=x pw=y") == (f"password={MASK} {MASK}", 2)
    assert redactor.custom_counts == Counter({"pw": 1})


def test_patterns_pass_to_a_child_process_unchanged() -> None:
    custom = patterns("ACME-[0-9]{8}", {"name": "t", "pattern": "TCK/[0-9]+"})
    again = CustomRedaction.from_json(custom.to_json())
    assert again.labels() == custom.labels()
    assert [p.pattern for p in again.patterns] == [p.pattern for p in custom.patterns]


def test_a_pattern_that_backtracks_in_re_runs_in_linear_time() -> None:
    """(a+)+$ takes exponential time in ``re`` on "aaa...b"; RE2 runs it in one pass."""
    script = (
        "from agent.redact import LineRedactor, redact_command\n"
        "from agent.redact_custom import CustomPattern, CustomRedaction\n"
        "custom = CustomRedaction(tuple(CustomPattern.compile(p, None, f'p{i}') for i, p in\n"
        "    enumerate(['(a+)+$', '(x|x)*y', '(.*a){12}'])))\n"
        "line = 'a' * 200_000 + 'b'\n"
        "LineRedactor(custom).redact(line); LineRedactor(custom).redact('x' * 200_000)\n"
        "redact_command([line, 'x' * 100_000], custom)\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=30, cwd=ROOT)


def test_a_pattern_is_compiled_once_and_compared_by_text() -> None:
    one = CustomPattern.compile("ACME-[0-9]{8}", "acme", "w")
    assert one == dataclasses.replace(one, regex=None)
    with pytest.raises(PatternInvalid, match="duplicate name acme"):
        CustomRedaction((one, one))
