"""``rmagent run``: the plain forms start the daemon without the command tree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli._daemon import daemon_home

RMAGENT = Path(sys.executable).parent / "rmagent"

# What an idle daemon must not hold: the command tree and what only a command, an edit or
# an optional feature needs. Each was loaded at start before, several MiB together.
NOT_LOADED_BY_THE_DAEMON = (
    "typer", "click", "rich", "agent.cli._app", "ruamel.yaml", "tomlkit", "re2",
    "importlib.metadata", "tarfile", "http.client", "difflib", "sqlalchemy", "paramiko",
    "asyncssh",
)


@pytest.mark.parametrize(("argv", "env", "home"), [
    (["run"], {}, "~/.rmaint-agent"),
    (["run"], {"RMAINT_HOME": "/srv/agent"}, "/srv/agent"),
    (["run"], {"RMAINT_HOME": ""}, "~/.rmaint-agent"),
    (["--home", "/srv/a", "run"], {"RMAINT_HOME": "/srv/b"}, "/srv/a"),
    (["--home=/srv/a", "run"], {}, "/srv/a"),
])
def test_the_plain_forms_name_the_home(argv: list[str], env: dict[str, str],
                                       home: str) -> None:
    assert daemon_home(argv, env) == Path(home).expanduser()


@pytest.mark.parametrize("argv", [
    [], ["run", "--help"], ["--help", "run"], ["--json", "run"], ["run", "extra"],
    ["--home", "run"], ["--home=", "run"], ["--home", "-x", "run"], ["status"],
    ["--home", "/a", "--home", "/b", "run"], ["approve", "run"],
])
def test_everything_else_goes_through_the_command_tree(argv: list[str]) -> None:
    assert daemon_home(argv, {}) is None


def test_the_daemon_imports_leave_out_what_an_idle_agent_never_uses() -> None:
    probe = ("import sys; import agent.cli, agent.cli._daemon, agent.config, agent.daemon; "
             f"print(' '.join(m for m in {NOT_LOADED_BY_THE_DAEMON!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    assert done.stdout.split() == []


def test_a_home_that_is_not_enrolled_is_one_line_and_exit_1(tmp_path: Path) -> None:
    done = subprocess.run([str(RMAGENT), "--home", str(tmp_path / "none"), "run"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and "not enrolled" in done.stderr
    assert (f"enroll it with 'rmagent --home {tmp_path / 'none'} enroll --token T', or pass "
            "another --home)") in done.stderr
    assert done.stderr.count("\n") == 1 and done.stdout == ""


def test_help_for_run_still_comes_from_the_command_tree() -> None:
    done = subprocess.run([str(RMAGENT), "run", "--help"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0
    assert "Run the agent daemon in the foreground" in done.stdout
