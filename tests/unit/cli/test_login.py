"""rmctl login: keeps one identity key per home, writes the documented files."""

from __future__ import annotations

import datetime as dt
import stat
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

import permissions
from controller.cli import app
from controller.client import login as login_module
from controller.client.config import load_config
from pki import certs
from pki.enroll import Enrolled, EnrollmentRefused
from pki.identity import Identity
from pki.token import JoinToken

TOKEN = JoinToken("127.0.0.1:7444", "sha256:" + "0" * 64, "example.test", "s3cret").encode()


class FakeEnrollment:
    """Certifies whatever key it is given as ``role``/``name``, like the controller would."""

    def __init__(self, role: str = "engineer", name: str = "alice") -> None:
        self.ca_key = certs.generate_key()
        self.ca = certs.create_ca(self.ca_key, "example.test", now=time.time())
        self.identity = Identity("example.test", role, name)
        self.keys: list[str] = []
        self.refuse = False

    async def __call__(self, token: JoinToken, key: ec.EllipticCurvePrivateKey,
                       **_: Any) -> Enrolled:
        if self.refuse:
            raise EnrollmentRefused("enrollment refused")
        self.keys.append(permissions.key_id(key.public_key()))
        cert = certs.issue(self.ca_key, self.ca, key.public_key(), self.identity,
                           now=time.time(), lifetime=dt.timedelta(hours=12))
        return Enrolled(self.identity, certs.cert_pem(cert), certs.cert_pem(self.ca),
                        "127.0.0.1:7443")


@pytest.fixture
def enrollment(monkeypatch: pytest.MonkeyPatch) -> FakeEnrollment:
    fake = FakeEnrollment()
    monkeypatch.setattr(login_module, "enroll", fake)
    return fake


def login(runner: CliRunner, home: Path, token: str = TOKEN) -> tuple[int, str, str]:
    result = runner.invoke(app, ["login", "--token", token, "--home", str(home)])
    assert "Traceback" not in result.output
    return result.exit_code, result.stdout, result.stderr


def test_login_writes_the_home(runner: CliRunner, tmp_path: Path,
                               enrollment: FakeEnrollment) -> None:
    home = tmp_path / "alice"
    code, out, err = login(runner, home)
    assert code == 0, err
    assert "logged in as engineer alice" in out and "a new identity key" in out
    assert stat.S_IMODE((home / "identity.key").stat().st_mode) == 0o600
    client = tomllib.loads((home / "rmctl.toml").read_text())["client"]
    assert client == {"role": "engineer", "name": "alice", "controller": "127.0.0.1:7443",
                      "trust_domain": "example.test", "key": "identity.key",
                      "cert": "identity.crt", "ca": "ca.crt"}
    assert (home / "ca.crt").read_bytes() == certs.cert_pem(enrollment.ca)
    assert load_config(home).identity == enrollment.identity


def test_a_second_login_reuses_the_key(runner: CliRunner, tmp_path: Path,
                                       enrollment: FakeEnrollment) -> None:
    home = tmp_path / "alice"
    assert login(runner, home)[0] == 0
    key_before = (home / "identity.key").read_bytes()
    code, out, _ = login(runner, home)
    assert code == 0 and "the existing identity key" in out
    assert (home / "identity.key").read_bytes() == key_before
    assert len(set(enrollment.keys)) == 1 and len(enrollment.keys) == 2


def test_login_refuses_a_controller_home_before_using_the_token(
        runner: CliRunner, tmp_path: Path, enrollment: FakeEnrollment) -> None:
    tmp_path.joinpath("rmctl.toml").write_text("[controller]\nlisten = '127.0.0.1:7443'\n")
    code, _, err = login(runner, tmp_path)
    assert code == 1 and "holds a controller deployment" in err
    assert enrollment.keys == []


def test_an_agent_token_is_not_for_rmctl(runner: CliRunner, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(login_module, "enroll", FakeEnrollment(role="agent", name="web-1"))
    code, _, err = login(runner, tmp_path / "h")
    assert code == 1 and "rmagent enroll --token T" in err
    assert not (tmp_path / "h" / "rmctl.toml").exists()


@pytest.mark.parametrize("token", ["garbage", "rmj1.!!!!", ""])
def test_a_damaged_token(runner: CliRunner, tmp_path: Path, enrollment: FakeEnrollment,
                         token: str) -> None:
    code, _, err = login(runner, tmp_path / "h", token)
    assert code == 1 and err.startswith("error: ") and err.count("\n") == 1
    assert enrollment.keys == []


def test_a_refused_token(runner: CliRunner, tmp_path: Path, enrollment: FakeEnrollment) -> None:
    enrollment.refuse = True
    code, _, err = login(runner, tmp_path / "h")
    assert (code, err) == (1, "error: login refused: enrollment refused\n")


def test_a_damaged_identity_key_is_not_replaced(runner: CliRunner, tmp_path: Path,
                                                enrollment: FakeEnrollment) -> None:
    (tmp_path / "identity.key").write_text("junk")
    code, _, err = login(runner, tmp_path)
    assert code == 1 and "move it away to make a new identity" in err
    assert (tmp_path / "identity.key").read_text() == "junk"
