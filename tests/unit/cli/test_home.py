"""A missing or damaged home ends a command with one clear line, before any network use."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from controller.cli import app
from controller.client.config import load_config
from controller.client.errors import ConfigError
from rmaint.v1 import controller_pb2 as pb

from .conftest import FakeChannel, Home

MakeHome = Callable[..., Home]


def run(runner: CliRunner, home: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--home", str(home), *args])
    assert "Traceback" not in result.output
    return result.exit_code, result.stderr


def test_a_complete_home_loads(home_factory: MakeHome) -> None:
    home = home_factory()
    config = load_config(home.path)
    assert config.identity.uri == "spiffe://example.test/engineer/alice"
    assert config.key == home.path / "identity.key"
    assert config.controller == "127.0.0.1:7443"


def test_missing_home(runner: CliRunner, tmp_path: Path, channel: FakeChannel) -> None:
    code, err = run(runner, tmp_path / "nowhere", "case", "list")
    assert code == 1
    assert err.startswith(f"error: no rmaint home at {tmp_path / 'nowhere'}: run 'rmctl login")
    assert channel.calls == []


def test_missing_config(runner: CliRunner, tmp_path: Path) -> None:
    code, err = run(runner, tmp_path, "customer", "list")
    assert (code, err.count("\n")) == (1, 1)
    assert "rmctl.toml does not exist" in err


@pytest.mark.parametrize(("text", "message"), [
    ("[client\nrole=", "is not valid TOML"),
    ("[controller]\nlisten = '127.0.0.1:7443'\n", "has no [client] section"),
    ("[client]\nrole = 'engineer'\nname = 'alice'\n", "[client] lacks controller"),
    ("client = 3\n", "has no [client] section"),
    ("[client]\nrole = 5\nname = 'a'\ncontroller = 'c'\ntrust_domain = 't'\nkey = 'k'\n"
     "cert = 'c'\nca = 'a'\n", "[client] role must be non-empty text"),
])
def test_garbled_config(runner: CliRunner, home_factory: MakeHome, text: str,
                        message: str) -> None:
    home = home_factory()
    (home.path / "rmctl.toml").write_text(text)
    code, err = run(runner, home.path, "case", "list")
    assert code == 1 and err.startswith("error: ") and err.count("\n") == 1
    assert message in err


def test_bad_identity_in_config(home_factory: MakeHome) -> None:
    home = home_factory()
    text = (home.path / "rmctl.toml").read_text().replace('"engineer"', '"wizard"')
    (home.path / "rmctl.toml").write_text(text)
    with pytest.raises(ConfigError, match="unknown role 'wizard'"):
        load_config(home.path)


@pytest.mark.parametrize("name", ["identity.key", "identity.crt", "ca.crt"])
def test_missing_identity_file(runner: CliRunner, home_factory: MakeHome, name: str) -> None:
    home = home_factory()
    (home.path / name).unlink()
    code, err = run(runner, home.path, "case", "list")
    assert code == 1
    assert err.startswith(f"error: {home.path / name} is missing")


def test_garbled_key_is_reported_by_engineer_commands(runner: CliRunner, home_factory: MakeHome,
                                                      channel: FakeChannel) -> None:
    home = home_factory()
    (home.path / "identity.key").write_text("not a key")
    code, err = run(runner, home.path, "access", "request", "--case", "C-1", "--agent", "a",
                    "--scope", "diag.read", "--for", "1h", "--reason", "r")
    assert code == 1
    assert err.startswith(f"error: cannot use the identity key {home.path / 'identity.key'}")
    assert channel.calls == []


def test_expired_certificate_is_named_before_connecting(home_factory: MakeHome) -> None:
    home = home_factory(lifetime_hours=1, now=time.time() - 7200)
    with pytest.raises(ConfigError, match=r"your certificate expired at .*rmctl login"):
        load_config(home.path).check_certificate(time.time())


def test_a_key_path_that_is_a_folder_is_named(home_factory: MakeHome) -> None:
    home = home_factory()
    text = (home.path / "rmctl.toml").read_text().replace('"identity.key"', '"."')
    (home.path / "rmctl.toml").write_text(text)
    with pytest.raises(ConfigError, match=r"is not a file: see \[client\] in .*rmctl.toml$"):
        load_config(home.path)


def test_a_garbled_ca_certificate_is_named_before_connecting(home_factory: MakeHome) -> None:
    home = home_factory()
    (home.path / "ca.crt").write_text("garbage")
    with pytest.raises(ConfigError,
                       match=r"cannot read the CA certificate .*ca.crt: not a PEM certificate$"):
        load_config(home.path).check_certificate(time.time())


def test_garbled_certificate(home_factory: MakeHome) -> None:
    home = home_factory()
    (home.path / "identity.crt").write_text("garbage")
    with pytest.raises(ConfigError,
                       match=r"cannot read the certificate .*identity.crt: not a PEM certificate$"):
        load_config(home.path).check_certificate(time.time())


def test_a_configuration_that_is_not_text_says_so(home_factory: MakeHome) -> None:
    home = home_factory()
    (home.path / "rmctl.toml").write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match=r"cannot read .*rmctl.toml: not UTF-8 text$"):
        load_config(home.path)


def test_home_after_the_command_and_from_the_environment(runner: CliRunner,
                                                         home_factory: MakeHome,
                                                         channel: FakeChannel) -> None:
    home = home_factory()
    channel.handlers["ListCases"] = lambda _: pb.ListCasesResponse()
    after = runner.invoke(app, ["case", "list", "--home", str(home.path)])
    from_env = runner.invoke(app, ["case", "list"], env={"RMAINT_HOME": str(home.path)})
    overridden = runner.invoke(app, ["--home", "/nonexistent", "case", "list", "--home",
                                     str(home.path)])
    assert [r.exit_code for r in (after, from_env, overridden)] == [0, 0, 0]
    assert len(channel.requests("ListCases")) == 3


def test_an_admin_home_cannot_run_engineer_commands(runner: CliRunner, home_factory: MakeHome,
                                                    channel: FakeChannel) -> None:
    home = home_factory(role="admin", name="admin")
    code, err = run(runner, home.path, "session", "open", "--case", "C-1", "--agent", "web-1")
    assert code == 1
    assert "need an engineer identity" in err
    assert channel.calls == []
