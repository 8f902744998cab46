"""Enrollment: one clear line for damaged or foreign tokens, and nothing half-written."""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from typer.testing import CliRunner, Result

from agent.cli import app
from agent.config import load, pin_approver
from agent.enrollment import (
    AlreadyEnrolled,
    EnrollmentError,
    Refused,
    check_listen,
    enroll_home,
)
from pki.certs import ca_pin, cert_pem, create_ca, generate_key, issue
from pki.enroll import Enrolled, EnrollmentRefused
from pki.files import key_pem
from pki.identity import Identity
from pki.token import JoinToken

TD = "example.test"


def _enroll(home: Path, token: str, *extra: str) -> Result:
    return CliRunner().invoke(app, ["--home", str(home), "enroll", "--token", token, *extra])


def _one_line_error(result: Result, text: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert text in result.stderr
    assert "Traceback" not in result.output


def _token(address: str = "127.0.0.1:9", pin: str = "sha256:00") -> JoinToken:
    return JoinToken(address, pin, TD, "secret")


@pytest.mark.parametrize(("token", "text"), [
    ("rmj1.!!!not-base64", "join token is damaged: check that the whole token was copied"),
    ("rmj1." + base64.urlsafe_b64encode(b'{"a": 1}').decode(), "join token is damaged"),
    ("eyJhbGciOiJIUzI1NiJ9.e30.sig", "not an rmaint join token"),
])
def test_damaged_or_foreign_token(tmp_path: Path, token: str, text: str) -> None:
    _one_line_error(_enroll(tmp_path / "h", token), text)
    assert not (tmp_path / "h").exists()


def test_unreachable_controller(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = _enroll(tmp_path / "h", _token(f"127.0.0.1:{port}").encode())
    _one_line_error(result, "cannot reach the enrollment address")
    assert not (tmp_path / "h" / "agent.toml").exists()
    assert not list((tmp_path / "h").glob("*.key*"))


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[str]:
    """A TLS server presenting a chain of another deployment's CA."""
    ca_key, key = generate_key(), generate_key()
    ca = create_ca(ca_key, "other.test", now=time.time())
    leaf = issue(ca_key, ca, key.public_key(), Identity("other.test", "controller"),
                 now=time.time(), lifetime=ca.not_valid_after_utc - ca.not_valid_before_utc,
                 ip_addresses=("127.0.0.1",))
    (tmp_path / "chain.pem").write_bytes(cert_pem(leaf) + cert_pem(ca))
    (tmp_path / "key.pem").write_bytes(key_pem(key))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "chain.pem", tmp_path / "key.pem")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            with context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)
        except (OSError, ssl.SSLError):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    listener.close()
    thread.join(10)


def test_token_of_another_deployment(tmp_path: Path, tls_server: str) -> None:
    mine = create_ca(generate_key(), TD, now=time.time())
    result = _enroll(tmp_path / "h", _token(tls_server, ca_pin(mine)).encode())
    _one_line_error(result, "the controller's CA does not match the token's pin")
    assert not (tmp_path / "h" / "agent.toml").exists()


def _fake(identity: Identity, *, refuse: str = ""):  # type: ignore[no-untyped-def]
    async def enroller(token: JoinToken, key: ec.EllipticCurvePrivateKey,
                       listen: str) -> Enrolled:
        if refuse:
            raise EnrollmentRefused(refuse)
        return Enrolled(identity, b"CERT", b"CA", "127.0.0.1:7443")
    return enroller


def _run(home: Path, enroller, *, force: bool = False):  # type: ignore[no-untyped-def]
    return asyncio.run(enroll_home(home, _token().encode(), listen="127.0.0.1:7501",
                                   force=force, enroller=enroller))


def test_enrolls_a_home(tmp_path: Path) -> None:
    home = tmp_path / "h"
    result = _run(home, _fake(Identity(TD, "agent", "web-1")))
    assert (result.agent_id, result.controller) == ("web-1", "127.0.0.1:7443")
    assert stat.S_IMODE((home / "agent.key").stat().st_mode) == 0o600
    assert (home / "agent.crt").read_bytes() == b"CERT"
    assert (home / "ca.crt").read_bytes() == b"CA"
    config = load(home)
    assert (config.id, config.trust_domain, config.listen) == ("web-1", TD, "127.0.0.1:7501")
    assert sorted(p.name for p in home.iterdir()) == ["agent.crt", "agent.key", "agent.toml",
                                                      "ca.crt"]


def test_token_for_a_person_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "h"
    with pytest.raises(Refused, match="for the engineer 'alice', not an agent"):
        _run(home, _fake(Identity(TD, "engineer", "alice")))
    assert not (home / "agent.toml").exists() and not (home / "agent.key").exists()


def test_used_token_is_explained(tmp_path: Path) -> None:
    with pytest.raises(Refused, match="unknown, already used or expired"):
        _run(tmp_path / "h", _fake(Identity(TD, "agent", "x"), refuse="enrollment refused"))


def test_enrolled_home_needs_force_and_keeps_approvers(tmp_path: Path) -> None:
    home = tmp_path / "h"
    _run(home, _fake(Identity(TD, "agent", "web-1")))
    pin = pin_approver(home, "ops", _approver_public_key())
    key_before = (home / "agent.key").read_bytes()
    with pytest.raises(AlreadyEnrolled):
        _run(home, _fake(Identity(TD, "agent", "web-2")))
    assert (home / "agent.key").read_bytes() == key_before
    _run(home, _fake(Identity(TD, "agent", "web-2")), force=True)
    assert load(home).id == "web-2" and load(home).approvers == (pin,)
    assert (home / "agent.key").read_bytes() != key_before


def test_enrolled_again_the_home_keeps_the_customers_policy(tmp_path: Path) -> None:
    home = tmp_path / "h"
    _run(home, _fake(Identity(TD, "agent", "web-1")))
    text = (home / "agent.toml").read_text()
    (home / "agent.toml").write_text(text + '\n[shell]\nuser = "maint"\nidle_timeout = 600\n'
                                     '\n[diag]\nredact_patterns = ["ticket-[0-9]+"]\n')
    before = load(home)
    assert before.shell.user == "maint"
    _run(home, _fake(Identity(TD, "agent", "web-2")), force=True)
    after = load(home)
    assert after.id == "web-2"
    assert (after.shell, after.diag) == (before.shell, before.diag)


def test_refused_force_keeps_the_working_agent(tmp_path: Path) -> None:
    home = tmp_path / "h"
    _run(home, _fake(Identity(TD, "agent", "web-1")))
    before = {p.name: p.read_bytes() for p in home.iterdir()}
    with pytest.raises(Refused):
        _run(home, _fake(Identity(TD, "agent", "x"), refuse="enrollment refused"), force=True)
    assert {p.name: p.read_bytes() for p in home.iterdir()} == before


def test_cli_refuses_an_enrolled_home(home: Path) -> None:
    _one_line_error(_enroll(home, _token().encode()), "already enrolled: use --force")


def test_bad_listen_is_refused_before_the_token_is_spent(tmp_path: Path) -> None:
    result = _enroll(tmp_path / "h", _token().encode(), "--listen", "nowhere")
    _one_line_error(result, "--listen must be host:port")


def _approver_public_key() -> bytes:
    return ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw)


@pytest.mark.parametrize("listen", ["a b:1", ":7445", "web-1:0", "web-1:70000", "[::1:7445",
                                    " web-1:7445", "web$1:7445", "web-1"])
def test_a_listen_address_that_cannot_be_served_is_refused_before_the_token_is_spent(
        tmp_path: Path, listen: str) -> None:
    spent: list[str] = []

    async def enroller(token: Any, key: Any, address: str) -> Enrolled:
        spent.append(address)
        raise AssertionError("the token must not be used")
    with pytest.raises(EnrollmentError, match="--listen must be host:port"):
        asyncio.run(enroll_home(tmp_path / "h", _token().encode(), listen=listen,
                                enroller=enroller))
    assert spent == []
    for fine in ("0.0.0.0:7445", "[::1]:7445", "web-1.example.test:7445"):
        assert check_listen(fine) == fine
