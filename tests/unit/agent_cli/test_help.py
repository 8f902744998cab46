"""Every command answers --help, without an enrolled home or a daemon."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from agent.cli import app

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


def test_every_command_is_covered() -> None:
    import typer.main

    group = typer.main.get_command(app)
    listed = {c[0] for c in COMMANDS if c}
    assert set(group.commands) == listed  # type: ignore[attr-defined]


def test_usage_error_exits_2() -> None:
    result = CliRunner().invoke(app, ["approve"])
    assert result.exit_code == 2
