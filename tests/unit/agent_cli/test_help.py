"""Every command answers --help, without an enrolled home or a daemon."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from agent.cli import app

# A value named by its Python type (<str>, <int range>) or a required argument in braces.
TYPE_NAMES = re.compile(r"<(?:str|int|integer|float|int range|float range)>|\{\w+\}")

COMMANDS = [
    [], ["enroll"], ["run"], ["approver"], ["approver", "init"], ["approver", "list"],
    ["requests"], ["approve"], ["deny"], ["revoke"], ["grants"], ["status"], ["log"],
    ["engineers"], ["engineers", "list"], ["engineers", "forget"],
    ["changes"], ["approve-change"], ["deny-change"],
    ["sessions"], ["watch"], ["kill"], ["verify-log"], ["locks"], ["sync"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "rmagent")
def test_help(command: list[str], tmp_path: object) -> None:
    result = CliRunner().invoke(app, ["--home", str(tmp_path), *command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.stdout
    assert not TYPE_NAMES.findall(result.stdout), "help names a type, not what to give"


def test_help_names_what_each_value_is(tmp_path: object) -> None:
    shown = CliRunner().invoke(app, ["approve", "--help"], env={"COLUMNS": "100"}).stdout
    assert "Usage: rmagent approve [OPTIONS] REQUEST_ID" in shown
    assert "--for <duration>" in shown and "--approver <approver>" in shown
    assert "--limit <n>" in CliRunner().invoke(app, ["log", "--help"]).stdout


def test_every_command_is_covered() -> None:
    import typer.main

    group = typer.main.get_command(app)
    listed = {c[0] for c in COMMANDS if c}
    assert set(group.commands) == listed  # type: ignore[attr-defined]


@pytest.mark.parametrize(("args", "line"), [
    (["approve"], "error: missing argument 'REQUEST_ID' (see 'rmagent approve --help')"),
    (["log", "--limit", "0"], "error: invalid value for '--limit': 0 is not in the range "
                              "1<=x<=100000 (see 'rmagent log --help')"),
    (["nope"], "error: no such command 'nope' (see 'rmagent --help')"),
    # The engineer and the consent log read it: one line, nothing that drives a terminal.
    *[(args, "error: invalid value for '--reason': a reason is one line of text, without "
       f"control characters (see 'rmagent {args[0]} --help')")
      for args in (["deny", "R-1", "--reason", "no\nscopes: none"],
                   ["revoke", "G-1", "--reason", "done\x1b[2J"],
                   ["deny-change", "sha256:abcdef12", "--reason", "no\u202e"])],
    # A consent names its change: an empty or short prefix would pick whichever is pending.
    *[(["approve-change", prefix], "error: invalid value for 'DIGEST': give the change's "
       "digest as 'rmagent changes' shows it, or at least its first 8 hex digits "
       "(see 'rmagent approve-change --help')") for prefix in ("sha256:", "", "sha256:abc")],
    (["--bogus", "status"], "error: no such option: --bogus (see 'rmagent --help')"),
    # The option parser raises these without naming the command: the group names it.
    (["log", "--limit"], "error: option '--limit' requires an argument "
                         "(see 'rmagent log --help')"),
    (["approver", "init", "--name"], "error: option '--name' requires an argument "
                                     "(see 'rmagent approver init --help')"),
    (["--json=1", "status"], "error: option '--json' does not take a value "
                             "(see 'rmagent --help')"),
    # Checked before the home is: a bad value is a usage error naming its option.
    (["--home", "/nonexistent", "approve", "R-1", "--for", "xyz", "--yes"],
     "error: invalid value for '--for': invalid duration 'xyz': use e.g. 90s, 30m, 2h, 1d "
     "(see 'rmagent approve --help')"),
    # --home is the root's: it goes before the command.
    (["log", "--home", "x"], "error: --home goes before the command: 'rmagent --home ... log' "
                             "(see 'rmagent log --help')"),
    (["approver", "list", "--home=x"], "error: --home goes before the command: 'rmagent "
                                       "--home ... approver list' (see 'rmagent approver list "
                                       "--help')"),
])
def test_usage_error_is_one_line_and_exits_2(args: list[str], line: str) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert (result.stdout, result.stderr) == ("", line + "\n")


def test_no_arguments_prints_help() -> None:
    result = CliRunner().invoke(app, ["approver"])
    assert result.exit_code == 2
    assert "Usage: rmagent approver" in result.output and "init" in result.output


def test_the_command_list_shows_each_first_sentence_whole() -> None:
    result = CliRunner(env={"COLUMNS": "80"}).invoke(app, ["--help"])
    text = " ".join(result.output.split())
    assert "run Run the agent daemon in the foreground (stop it with Ctrl-C or SIGTERM)." in text
    assert "..." not in result.output.split("Commands:")[1]
