"""Enrolling with bad join tokens, through the real commands.

A reused token, an expired token and a token whose CA pin was altered: ``rmagent enroll``
and ``rmctl login`` each fail with exit status 1 and one clear ``error:`` line, no
traceback, and leave no key, certificate or configuration in the home.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from pathlib import Path
from typing import Any

import pytest

from demo.deployment import free_port
from pki.token import JoinToken
from rmaint.v1 import controller_pb2 as pb
from rmaint.v1 import controller_pb2_grpc as rpc
from tests.integration.e2e.conftest import E2E, RPC_TIMEOUT, new_id, one_error_line

PROGRAMS = ("rmagent", "rmctl")
# What an enrolled home holds; a refused enrollment must leave none of it.
LEFT_BEHIND = (".key", ".crt", ".toml", ".new")


def new_token(deployment: E2E, program: str, *, ttl: str = "30m") -> dict[str, Any]:
    """A join token for a new agent of acme (rmagent) or a new engineer (rmctl)."""
    d = deployment.d
    if program == "rmagent":
        args = ["agent", "add", new_id("e2e-"), "--customer", "acme"]
    else:
        args = ["engineer", "add", new_id("eng-")]
    return dict(d.json(d.rmctl(*args, "--ttl", ttl, "--json")))


def admin_token(deployment: E2E, program: str) -> str:
    """The same, from the admin API directly (what rmctl calls; quicker than the command)."""
    role, customer = ("agent", "acme") if program == "rmagent" else ("engineer", "")
    with deployment.channel("controller", "admin") as channel:
        reply = rpc.AdminServiceStub(channel).CreateJoinToken(pb.CreateJoinTokenRequest(
            role=role, subject=new_id("e2e-"), customer_id=customer), timeout=RPC_TIMEOUT)
    return str(reply.token)


def enroll(deployment: E2E, program: str, home: Path, token: str) -> Any:
    if program == "rmagent":
        return deployment.d.run("rmagent", home, "enroll", "--token", token,
                                "--listen", f"127.0.0.1:{free_port()}", check=False)
    return deployment.d.run("rmctl", home, "login", "--token", token, check=False)


def enroll_failures(deployment: E2E, mark: int) -> list[dict[str, Any]]:
    """The controller's log of refused enrollments since ``mark`` (the precise reasons)."""
    return [r for r in deployment.controller_log.since(mark) if r["event"] == "rpc.failed"
            and r["method"] == "/rmaint.v1.EnrollmentService/Enroll"]


def assert_refused_cleanly(done: Any, home: Path) -> str:
    message = one_error_line(done)
    assert done.stdout == ""
    files = sorted(str(f.relative_to(home)) for f in home.rglob("*")) if home.exists() else []
    left = [f for f in files if f.endswith(LEFT_BEHIND)]
    assert left == [], f"a refused enrollment left {left} in {home}"
    return message


@pytest.mark.parametrize("program", PROGRAMS)
def test_a_reused_token_is_refused(deployment: E2E, tmp_path: Path, program: str) -> None:
    token = admin_token(deployment, program)
    first = enroll(deployment, program, tmp_path / "first", token)
    assert first.returncode == 0, first.stderr
    mark = deployment.controller_log.mark()
    message = assert_refused_cleanly(
        enroll(deployment, program, tmp_path / "second", token), tmp_path / "second")
    assert "enrollment refused" in message
    logged = enroll_failures(deployment, mark)
    assert [(r["code"], r["reason"].endswith("was already used")) for r in logged] == \
        [("UNAUTHENTICATED", True)], logged


@pytest.mark.parametrize("program", PROGRAMS)
def test_an_expired_token_is_refused(deployment: E2E, tmp_path: Path, program: str) -> None:
    # rmctl agent add X --customer acme --ttl 1s (or engineer add), then just past it.
    token = new_token(deployment, program, ttl="1s")
    issued_by = time.time()  # the controller made it before answering: it lapses by + 1 s
    time.sleep(max(0.0, issued_by + 1.05 - time.time()))
    assert time.time() > token["expires_at"]
    mark = deployment.controller_log.mark()
    message = assert_refused_cleanly(enroll(deployment, program, tmp_path, token["token"]),
                                     tmp_path)
    assert "enrollment refused" in message
    logged = enroll_failures(deployment, mark)
    assert [(r["code"], r["reason"].endswith("expired")) for r in logged] == \
        [("UNAUTHENTICATED", True)], logged


@pytest.mark.parametrize("program", PROGRAMS)
def test_a_token_with_an_altered_ca_pin_is_refused(deployment: E2E, tmp_path: Path,
                                                   program: str) -> None:
    token = admin_token(deployment, program)
    original = JoinToken.decode(token)
    pin = "sha256:" + hashlib.sha256(b"another deployment's CA").hexdigest()
    altered = dataclasses.replace(original, ca_pin=pin).encode()
    mark = deployment.controller_log.mark()
    message = assert_refused_cleanly(enroll(deployment, program, tmp_path / "altered", altered),
                                     tmp_path / "altered")
    assert "does not match the token's pin" in message
    # Nothing reached the enrollment service: the token is unspent and works as issued.
    assert [r for r in deployment.controller_log.since(mark) if r["event"] == "enrolled"] == []
    done = enroll(deployment, program, tmp_path / "original", token)
    assert done.returncode == 0, done.stderr
