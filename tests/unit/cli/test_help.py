"""Every rmctl command has --help, and options parse the way the commands document."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from controller.cli import app
from controller.cli._app import GROUPS

# A value named by its Python type (<str>, <int range>) or a required argument in braces.
TYPE_NAMES = re.compile(r"<(?:str|int|integer|float|int range|float range)>|\{\w+\}")

EXPECTED = {
    "init", "serve", "login",
    "customer add", "customer list", "customer show", "agent add", "agent list",
    "agent install",
    "engineer add", "engineer list", "auditor add",
    "case open", "case list", "case show", "case close",
    "access request", "access list",
    "session open", "session list", "session show", "session close", "session replay",
    "ssh", "ssh-cert", "gateway-key",
    "diag system", "diag disks", "diag processes",
    "diag cpu", "diag memory", "diag network", "diag process", "diag services", "diag clock",
    "diag watch", "bundle create", "bundle get", "bundle list",
    "bundle verify",
    "diag database", "diag connect tcp", "diag connect dns", "diag connect http", "diag connect tls",
    "logs tail", "logs search", "files stat", "files hash",
    "data describe", "data query", "data preview", "data apply", "data undo",
    "config preview", "config apply", "config undo",
    "service status", "service preview", "service apply",
    "device list", "device exec",
    "consent log",
    "audit verify", "audit export", "audit verify-bundle", "audit prove", "audit report",
    "audit checkpoint", "audit reconcile",
    "lock add", "lock list", "lock remove", "renew", "reissue",
}


def command_paths(command: Any = None, prefix: tuple[str, ...] = ()) -> Iterator[str]:
    """Every command, through the listing and lookup that the root loads groups with."""
    command = command or get_command(app)
    if not hasattr(command, "list_commands"):
        yield " ".join(prefix)
        return
    ctx = command.make_context(prefix[-1] if prefix else "rmctl", [], resilient_parsing=True)
    for name in command.list_commands(ctx):
        yield from command_paths(command.get_command(ctx, name), (*prefix, name))


def test_the_command_tree_is_the_documented_one() -> None:
    assert set(command_paths()) == EXPECTED


def test_the_root_lists_groups_with_the_help_they_show_when_loaded(runner: CliRunner) -> None:
    listed = runner.invoke(app, ["--help"]).output
    root = get_command(app)
    ctx = root.make_context("rmctl", [], resilient_parsing=True)
    for name, entry in GROUPS.items():
        loaded = root.get_command(ctx, name)  # type: ignore[attr-defined]  # the root is a group
        assert loaded.help == entry.help
        assert f"  {name}" in listed and entry.help in listed


def test_one_command_loads_only_its_own_group() -> None:
    script = ("import sys; from controller.cli import app; from typer.main import get_command; "
              "root = get_command(app); ctx = root.make_context('rmctl', [], "
              "resilient_parsing=True); root.get_command(ctx, 'diag'); "
              "print(sorted(m for m in sys.modules if m.startswith('controller.cli.')))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True)
    loaded = set(ast.literal_eval(done.stdout))
    assert "controller.cli.diag" in loaded
    assert not loaded & {"controller.cli.admin", "controller.cli.cases",
                         "controller.cli.access", "controller.cli.sessions"}


@pytest.mark.parametrize("path", sorted(EXPECTED))
def test_every_command_has_help_with_home_and_json(runner: CliRunner, path: str) -> None:
    result = runner.invoke(app, [*path.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert f"Usage: rmctl {path}" in result.output
    assert "--home" in result.output and "--json" in result.output
    assert not TYPE_NAMES.findall(result.output), "help names a type, not what to give"


def test_help_names_what_each_value_is(runner: CliRunner) -> None:
    shown = runner.invoke(app, ["access", "request", "--help"], env={"COLUMNS": "100"}).output
    for option in ("--case <case-id>", "--agent <agent-id>", "--for <duration>",
                   "--reason <text>", "--home <path>"):
        assert option in shown
    shown = runner.invoke(app, ["diag", "watch", "--help"], env={"COLUMNS": "100"}).output
    assert "--every <seconds>" in shown and "--top <n>" in shown
    shown = runner.invoke(app, ["lock", "remove", "--help"]).output
    assert "Usage: rmctl lock remove [OPTIONS] LOCK_ID" in shown


@pytest.mark.parametrize("group", ["customer", "agent", "engineer", "auditor", "case",
                                   "access", "session", "diag", "consent",
                                   "logs", "files"])
def test_groups_show_their_commands(runner: CliRunner, group: str) -> None:
    result = runner.invoke(app, [group, "--help"])
    assert result.exit_code == 0
    assert "Commands" in result.output


def test_root_help_lists_global_options(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "RMAINT_HOME" in result.output


@pytest.mark.parametrize("args", [
    ["diag", "processes", "--limit", "0"],
    ["diag", "processes", "--limit", "101"],
    ["diag", "processes", "--by", "disk"],
    ["diag", "processes", "--interval", "11"],
    ["diag", "cpu", "--interval", "0"],
    ["diag", "process"],
    ["diag", "process", "0"],
    ["diag", "connect", "tcp", "db.example", "0"],
    ["diag", "connect", "tcp", "db.example", "5432", "--timeout", "11"],
    ["diag", "connect", "smtp", "mail.example"],
    ["logs", "tail", "--file", "/var/log/syslog", "-n", "1001"],
    ["logs", "tail"],
    ["logs", "tail", "--file", "/var/log/syslog", "--unit", "nginx.service"],
    ["logs", "search", "--unit", "nginx.service"],
    ["logs", "search", "--unit", "nginx.service", "x", "--limit", "0"],
    ["files", "stat"],
    ["case", "list", "--status", "pending"],
    ["case", "open", "--customer", "acme"],
    ["case", "close", "C-0001"],
    ["access", "request", "--case", "C-1", "--agent", "web-1", "--scope", "diag.read",
     "--for", "2h"],
    ["agent", "add", "web-1"],
    ["customer", "add", "acme", "--name", "Acme"],
    ["customer", "add", "acme", "--name", "Acme", "--contract-start", "1.1.2026",
     "--contract-end", "2026-12-31"],
    ["access", "request", "--case", "C-1", "--agent", "web-1", "--scope", "diag.read",
     "--for", "2 hours", "--reason", "r"],
    ["lock", "add", "agent:web-1", "--reason", "r", "--for", "soon"],
    ["engineer", "add", "alice", "--ttl", "-5m"],
    ["engineer", "add", "alice", "--ttl", ""],
    ["lock", "add", "agent:web-1", "--reason", "r", "--for", ""],
    ["session", "replay", "S-1", "--index", "last"],
    ["init"],
    ["login"],
    ["no-such-command"],
    ["case", "list", "--home"],
    ["diag", "connect", "tcp", "--timeout"],
])
def test_usage_errors_exit_2(runner: CliRunner, tmp_path: Path, args: list[str]) -> None:
    result = runner.invoke(app, ["--home", str(tmp_path), *args])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    # One line naming what is wrong and the help to read; no usage block.
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and line.endswith(" --help')"), line


@pytest.mark.parametrize(("args", "line"), [
    (["case", "open"], "error: missing option '--customer' (see 'rmctl case open --help')"),
    (["case", "opn"], "error: no such command 'opn'. Did you mean 'open'? "
                      "(see 'rmctl case --help')"),
    # Raised by the option parser without naming the command: the group names it.
    (["case", "list", "--home"], "error: option '--home' requires an argument "
                                 "(see 'rmctl case list --help')"),
    (["diag", "connect", "tcp", "--timeout"], "error: option '--timeout' requires an "
                                              "argument (see 'rmctl diag connect tcp --help')"),
])
def test_a_usage_error_names_the_help_of_its_command(runner: CliRunner, args: list[str],
                                                     line: str) -> None:
    result = runner.invoke(app, args)
    assert (result.exit_code, result.stderr) == (2, line + "\n")


def test_the_command_list_shows_each_first_sentence_whole(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "80"})
    text = " ".join(result.output.split())
    assert "gateway-key Print the known_hosts line that pins this controller's SSH gateway " \
           "key." in text
    assert "..." not in result.output.split("Commands:")[1]
