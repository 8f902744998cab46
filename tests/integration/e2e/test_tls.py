"""Who may connect, against the running controller and agent.

No client certificate, a certificate from a foreign CA and an expired certificate (signed
by the deployment CA itself) are refused in the TLS handshake, before any RPC runs: the
client sees UNAVAILABLE and nothing is executed or recorded as allowed. The server must
still write the refusal, with its precise reason, to its own log.

A verified certificate with the wrong role is refused per call with PERMISSION_DENIED and
exactly "permission denied"; the precise reason goes to the server's log.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest

import permissions as p
from demo.deployment import TRUST_DOMAIN
from pki import certs
from pki.files import key_pem, read_cert
from pki.identity import Identity
from rmaint.envelopes import to_wire
from rmaint.v1 import agent_pb2, agent_pb2_grpc
from rmaint.v1 import controller_pb2 as pb
from rmaint.v1 import controller_pb2_grpc as rpc
from tests.integration.e2e.conftest import (
    E2E,
    REFUSED,
    Granted,
    TlsId,
    new_id,
    refusal,
)

KINDS = ("no-certificate", "foreign-ca", "expired")
TARGETS = ("controller", "agent")
# The identity an attacker would most like to have at each server.
WANTED = {"controller": Identity(TRUST_DOMAIN, "admin", "admin"),
          "agent": Identity(TRUST_DOMAIN, "controller")}
# How the precise reason of each handshake refusal reads (OpenSSL's words, or plain ones).
REASONS = {
    "no-certificate": ("peer_did_not_return_a_certificate", "no client certificate",
                       "did not return a certificate"),
    "foreign-ca": ("unable to get local issuer certificate", "unknown issuer", "unknown ca"),
    "expired": ("certificate has expired", "certificate expired"),
}
SERVE_OUTPUT = {"controller": ("controller_home", "rmctl-serve.out"),
                "agent": ("agent_home", "rmagent-serve.out")}


@pytest.fixture(scope="module")
def granted(deployment: E2E) -> Granted:
    return deployment.grant_session()


def client_identity(deployment: E2E, kind: str, target: str) -> TlsId | None:
    """What the attacker presents: nothing, a foreign CA's certificate, or an expired one."""
    if kind == "no-certificate":
        return None
    key = certs.generate_key()
    now = time.time()
    if kind == "foreign-ca":
        ca_key = certs.generate_key()
        ca = certs.create_ca(ca_key, TRUST_DOMAIN, now=now)  # same trust domain, other CA
        cert = certs.issue(ca_key, ca, key.public_key(), WANTED[target], now=now,
                           lifetime=dt.timedelta(hours=1))
    else:
        ca = read_cert(deployment.d.controller_home / "ca.crt")
        cert = certs.issue(deployment.ca_key(), ca, key.public_key(), WANTED[target],
                           now=now - 2 * 86400, lifetime=dt.timedelta(days=1))
        assert cert.not_valid_after_utc.timestamp() < now
    return TlsId(key_pem(key), certs.cert_pem(cert))


def attack(deployment: E2E, granted: Granted, target: str) -> Callable[[TlsId | None], Any]:
    """A call that would do harm if it got through: mint a join token at the controller, or
    run an engineer-signed operation under an active grant at the agent."""
    if target == "controller":
        def mint(who: TlsId | None) -> Any:
            with deployment.channel("controller", who) as channel:
                return rpc.AdminServiceStub(channel).CreateJoinToken(
                    pb.CreateJoinTokenRequest(role="engineer", subject="mallory"), timeout=10)
        return mint

    envelope = deployment.session_operation(granted)

    def execute(who: TlsId | None) -> Any:
        with deployment.channel("agent", who) as channel:
            return agent_pb2_grpc.AgentServiceStub(channel).Execute(
                agent_pb2.ExecuteRequest(operation=to_wire(envelope)), timeout=10)
    return execute


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("kind", KINDS)
def test_refused_in_the_handshake_and_nothing_runs(deployment: E2E, granted: Granted,
                                                   kind: str, target: str) -> None:
    call = attack(deployment, granted, target)
    log_mark, agent_mark = deployment.controller_log.mark(), deployment.agent_log_mark()
    error = refusal(lambda: call(client_identity(deployment, kind, target)))
    assert error.code() == grpc.StatusCode.UNAVAILABLE, error
    # Nothing reached a method: no token, no RPC record, no operation attempt.
    logged = deployment.controller_log.since(log_mark)
    assert not [r for r in logged if r.get("event") == "token.created"
                or r.get("method") == "/rmaint.v1.AdminService/CreateJoinToken"], logged
    assert deployment.agent_log(agent_mark) == []
    # The same call with the right identity goes through: the refusal was the certificate's.
    answer = call(deployment.identity("admin" if target == "controller" else "controller"))
    if target == "controller":
        assert answer.token.startswith("rmj1.")
    else:
        assert json.loads(answer.result_json)["hostname"]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("kind", KINDS)
def test_handshake_refusal_is_logged_with_its_reason(deployment: E2E, granted: Granted,
                                                     kind: str, target: str) -> None:
    log = deployment.controller_log if target == "controller" else deployment.agent_daemon_log
    home_attr, serve_out = SERVE_OUTPUT[target]
    stderr_file = getattr(deployment.d, home_attr) / serve_out
    stderr_mark = stderr_file.stat().st_size
    mark = log.mark()
    refusal(lambda: attack(deployment, granted, target)(client_identity(deployment, kind, target)))
    wanted = REASONS[kind]
    found = log.wait_for(mark, lambda r: any(w in str(r).lower() for w in wanted), timeout=1.0)
    with stderr_file.open("rb") as f:
        f.seek(stderr_mark)
        raw = [line for line in f.read().decode(errors="replace").splitlines()
               if "andshake" in line]
    assert found is not None, (
        f"{log.path.name} has no record of the {kind} handshake refusal; the process's "
        f"stderr only ({serve_out}): {raw}")


@pytest.mark.parametrize(("party", "method"), [
    ("agent", "AdminService/CreateJoinToken"),
    ("agent", "EngineerService/RequestAccess"),
    ("auditor", "AdminService/CreateJoinToken"),
    ("auditor", "EngineerService/OpenSession"),
])
def test_wrong_role_at_the_controller(deployment: E2E, granted: Granted, party: str,
                                      method: str) -> None:
    request_access = p.request_access(
        deployment.engineer_key(), request_id=new_id("R-"), case_id=granted.case_id,
        agent_id="web-1", engineer="alice", scopes=["diag.read"], duration_seconds=600,
        reason="replayed by someone else", now=int(time.time()))
    calls: dict[str, Callable[[grpc.Channel], Any]] = {
        "AdminService/CreateJoinToken": lambda ch: rpc.AdminServiceStub(ch).CreateJoinToken(
            pb.CreateJoinTokenRequest(role="engineer", subject="mallory"), timeout=10),
        "EngineerService/RequestAccess": lambda ch: rpc.EngineerServiceStub(ch).RequestAccess(
            pb.RequestAccessRequest(request=to_wire(request_access)), timeout=10),
        "EngineerService/OpenSession": lambda ch: rpc.EngineerServiceStub(ch).OpenSession(
            pb.OpenSessionRequest(case_id=granted.case_id, agent_id="web-1",
                                  grant_id=granted.grant_id), timeout=10),
    }
    mark = deployment.controller_log.mark()
    with deployment.channel("controller", party) as channel:
        error = refusal(lambda: calls[method](channel))
    assert (error.code(), error.details()) == (grpc.StatusCode.PERMISSION_DENIED, REFUSED)
    caller = f"spiffe://{TRUST_DOMAIN}/{party}/{'web-1' if party == 'agent' else 'bob'}"
    logged = [r for r in deployment.controller_log.since(mark) if r["event"].startswith("rpc.")
              or r["event"] in ("token.created", "access.requested", "session.opened")]
    assert [(r["event"], r["method"], r["caller"], r["reason"]) for r in logged] == [
        ("rpc.refused", f"/rmaint.v1.{method}", caller, f"role {party} may not call this method")]


def test_engineer_cannot_call_the_agent_directly(deployment: E2E, granted: Granted) -> None:
    envelope = deployment.session_operation(granted)  # alice's own, valid operation
    mark, log_mark = deployment.agent_log_mark(), deployment.agent_daemon_log.mark()
    error = refusal(lambda: deployment.execute(envelope, who="engineer"))
    assert (error.code(), error.details()) == (grpc.StatusCode.PERMISSION_DENIED, REFUSED)
    refused = deployment.agent_daemon_log.wait_for(
        log_mark, lambda r: r.get("msg") == "call refused")
    assert refused is not None
    assert (refused["method"], refused["reason"], refused["caller"]) == (
        "/rmaint.v1.AgentService/Execute", "role engineer not allowed",
        f"spiffe://{TRUST_DOMAIN}/engineer/alice")
    assert deployment.agent_log(mark) == []  # never reached the dispatcher
    # Relayed by the controller's identity, the very same envelope runs (nothing consumed).
    reply = deployment.execute(envelope)
    deployment.check_receipt(envelope, reply)
    deployment.assert_allowed_and_ran(envelope, mark)
