"""The CLI's error boundary: one line on stderr, exit 1, 130 when interrupted."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from agent.approvals import ApprovalError
from agent.cli import _consent
from agent.cli._errors import UserError, message_for
from agent.config import ConfigMissing
from agent.homes import command_for, logged_command_for
from agent.local_client import NOT_RUNNING, DaemonNotRunning

from .conftest import FakeAgent, Invoke, signed_request


def _raise(exc: BaseException):  # type: ignore[no-untyped-def]
    def run(coro):  # type: ignore[no-untyped-def]
        coro.close()
        raise exc
    return run


def test_interrupt_exits_130(rmagent: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_consent, "run", _raise(KeyboardInterrupt()))
    result = rmagent("requests")
    assert result.exit_code == 130
    assert "Traceback" not in result.output


def test_unexpected_failure_is_one_line(rmagent: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RMAINT_DEBUG", raising=False)
    monkeypatch.setattr(_consent, "run", _raise(RuntimeError("disk on fire")))
    result = rmagent("grants")
    assert result.exit_code == 1
    assert result.stderr == "error: unexpected failure (RuntimeError): disk on fire\n"


def test_a_closed_pipe_ends_quietly(rmagent: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RMAINT_DEBUG", raising=False)
    monkeypatch.setattr(_consent, "run", _raise(BrokenPipeError(errno.EPIPE, "Broken pipe")))
    result = rmagent("grants", "--json")
    assert result.exit_code == 1
    assert result.stderr == ""


def test_messages_come_from_one_table() -> None:
    assert message_for(UserError("nope")) == "nope"
    assert "rmagent enroll --token" in message_for(ConfigMissing("/h/agent.toml not found"))
    assert message_for(FileNotFoundError(2, "No such file", "/x")) == "No such file: /x"


def test_engineer_text_is_shown_literally(rmagent: Invoke, daemon: FakeAgent) -> None:
    reason = "[bold red]urgent[/] :warning: [link=http://x]fix[/link]"
    daemon.add_request(signed_request(reason=reason))
    result = rmagent("requests", "--all")
    assert result.exit_code == 0, result.output
    assert reason in result.stdout


def test_run_refuses_a_home_that_is_not_enrolled(tmp_path: object) -> None:
    from typer.testing import CliRunner

    from agent.cli import app

    result = CliRunner().invoke(app, ["--home", f"{tmp_path}/none", "run"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and "not enrolled" in result.stderr
    assert result.stderr.count("\n") == 1


def test_hints_name_the_home_only_when_a_bare_command_would_miss_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RMAINT_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert command_for("run", tmp_path / ".rmaint-agent") == "rmagent run"
    assert command_for("run", None) == "rmagent run"
    assert command_for("run", Path("my home")) == "rmagent --home 'my home' run"
    monkeypatch.setenv("RMAINT_HOME", "site/agent")
    assert command_for("requests", Path("site/agent")) == "rmagent requests"
    assert command_for("requests", tmp_path / ".rmaint-agent") == \
        f"rmagent --home {tmp_path / '.rmaint-agent'} requests"


def test_the_daemons_log_names_its_home_absolutely_always(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A log line is read later, from another shell: neither this process's RMAINT_HOME
    nor its working directory holds there."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RMAINT_HOME", "site")
    assert logged_command_for("approver init", Path("site")) == \
        f"rmagent --home {tmp_path / 'site'} approver init"
    monkeypatch.delenv("RMAINT_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert logged_command_for("run", tmp_path / ".rmaint-agent") == \
        f"rmagent --home {tmp_path / '.rmaint-agent'} run"
    assert logged_command_for("run", Path("my home")) == \
        f"rmagent --home '{tmp_path / 'my home'}' run"


def test_error_hints_carry_the_home_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RMAINT_HOME", raising=False)
    home = Path("/srv/agent")
    assert message_for(DaemonNotRunning(NOT_RUNNING), home) == \
        "the agent is not running: start it with 'rmagent --home /srv/agent run'"
    assert message_for(ConfigMissing("/srv/agent/agent.toml not found"), home).endswith(
        "(enroll it with 'rmagent --home /srv/agent enroll --token T', or pass another --home)")
    assert message_for(DaemonNotRunning("socket gone"), home) == "socket gone"


def test_commands_quoted_by_any_error_carry_the_home_given(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RMAINT_HOME", raising=False)
    said = ApprovalError("no approver is pinned: create one with 'rmagent approver init'")
    assert message_for(said, Path("/srv/agent")) == \
        "no approver is pinned: create one with 'rmagent --home /srv/agent approver init'"
    assert message_for(said, None) == str(said)
    plain = ApprovalError("'rmagent' alone, or 'rm -rf' quoted, stays as written")
    assert message_for(plain, Path("/srv/agent")) == str(plain)
