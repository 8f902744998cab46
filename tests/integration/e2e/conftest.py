"""End-to-end fixtures: whole deployments on loopback, driven through the real commands.

Every deployment is ``demo.deployment.Deployment``: a real ``rmctl serve`` and a real
``rmagent run`` (separate processes, real mutual TLS, real SQLite), customer acme with a
contract, agent web-1 with approver carol, engineer alice, auditor bob.

The modules in :data:`BOTH_MODES` run twice (parameter ``e2e_mode``): with the agent in
direct mode, and in dial-out mode, where the controller relays every operation over the
stream the agent opened (``still_serving`` checks the agent answered there). The dial-out
deployment's agent also keeps its mTLS port (agent mode "both") so that the tests acting
as a hostile controller can still reach it; ``test_dialout`` covers pure dial-out agents.

    deployment               one deployment for the whole e2e package; tests share it without
                             disturbing each other (each works on its own case, request,
                             grant or session)
    deployment_factory       fresh deployments for a module that must not share one
                             (stopped when the module ends)
    granted_session          factory: a case, alice's access request, the customer's approval
                             (rmagent approve) and an open session (rmctl session open) on the
                             shared deployment
    deployment_with_session  factory: a fresh deployment with a granted session

Tests may also act as a hostile party with the files a party holds: the controller's own
key and certificate (a malicious controller calling the agent directly), the engineer's
identity key, the customer's approver key, the deployment CA key.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from grpc_health.v1 import health_pb2, health_pb2_grpc

import permissions as p
from controller.client.engineer import SessionStore
from demo.deployment import TRUST_DOMAIN, Deployment
from pki.files import read_cert, read_ec_key, read_ed25519_key
from rmaint.envelopes import from_wire, to_wire
from rmaint.v1 import agent_pb2, agent_pb2_grpc, common_pb2
from rmaint.v1 import controller_pb2 as pb
from rmaint.v1 import controller_pb2_grpc as rpc

AGENT_ID = "web-1"
ENGINEER = "alice"
APPROVER = "carol"
REFUSED = "permission denied"
RPC_TIMEOUT = 30.0
BOTH_MODES = frozenset({"test_happy_path", "test_grants", "test_revocation", "test_robustness",
                        "test_locks"})
# e2e_mode -> the agent's mode in agent.toml
_AGENT_MODES = {"direct": "direct", "dial-out": "both"}

# What each party holds: (home attribute, key file, certificate file).
_IDENTITIES = {
    "controller": ("controller_home", "controller.key", "controller.crt"),
    "admin": ("controller_home", "admin.key", "admin.crt"),
    "engineer": ("engineer_home", "identity.key", "identity.crt"),
    "auditor": ("auditor_home", "identity.key", "identity.crt"),
    "agent": ("agent_home", "agent.key", "agent.crt"),
}
# The DNS name each server's certificate is checked for.
SERVER_NAMES = {
    "controller": f"controller.{TRUST_DOMAIN}",
    "enroll": f"controller.{TRUST_DOMAIN}",
    "agent": f"{AGENT_ID}.agent.{TRUST_DOMAIN}",
}


@dataclass(frozen=True)
class TlsId:
    """A client identity for mutual TLS: PEM key and certificate."""

    key: bytes
    cert: bytes


@dataclass(frozen=True)
class Granted:
    """An open session under a grant the customer approved."""

    case_id: str
    request_id: str
    grant_id: str
    session_id: str
    scopes: tuple[str, ...]


def new_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(6)}"


def refusal(call: Callable[[], Any]) -> grpc.RpcError:
    """The error status of a call that must fail."""
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


def one_error_line(done: Any) -> str:
    """The message of a command that failed cleanly: exit 1, one ``error:`` line, no traceback."""
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return str(lines[0][len("error: "):])


class StructuredLog:
    """A JSON-lines log file (controller.log, agent.log), read from an offset on."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def since(self, offset: int) -> list[dict[str, Any]]:
        with self.path.open("rb") as f:
            f.seek(offset)
            data = f.read()
        records = []
        for line in data.decode("utf-8", "replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                record = {"unparsed": line}
            records.append(record if isinstance(record, dict) else {"unparsed": line})
        return records

    def wait_for(self, offset: int, predicate: Callable[[dict[str, Any]], bool],
                 timeout: float = 2.0) -> dict[str, Any] | None:
        """The first record after ``offset`` that matches, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            for record in self.since(offset):
                if predicate(record):
                    return record
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)


class E2E:
    """A running deployment with the means to use it as any of its parties."""

    def __init__(self, d: Deployment) -> None:
        self.d = d
        self.dial_out = d.mode != "direct"
        self.controller_log = StructuredLog(d.controller_home / "controller.log")
        self.agent_daemon_log = StructuredLog(d.agent_home / "agent.log")

    # -- files a party holds --------------------------------------------------------------

    @property
    def ca_pem(self) -> bytes:
        return (self.d.controller_home / "ca.crt").read_bytes()

    def identity(self, party: str) -> TlsId:
        home_attr, key, cert = _IDENTITIES[party]
        home: Path = getattr(self.d, home_attr)
        return TlsId((home / key).read_bytes(), (home / cert).read_bytes())

    def engineer_key(self) -> ec.EllipticCurvePrivateKey:
        return read_ec_key(self.d.engineer_home / "identity.key")

    def controller_key(self) -> ec.EllipticCurvePrivateKey:
        return read_ec_key(self.d.controller_home / "controller.key")

    def ca_key(self) -> ec.EllipticCurvePrivateKey:
        return read_ec_key(self.d.controller_home / "ca.key")

    def approver_key(self) -> ed25519.Ed25519PrivateKey:
        return read_ed25519_key(self.d.agent_home / "approvers" / f"{APPROVER}.key")

    def agent_public_key(self) -> p.PublicKey:
        key = read_cert(self.d.agent_home / "agent.crt").public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        return key

    # -- channels ----------------------------------------------------------------------

    def port(self, target: str) -> int:
        return {"controller": self.d.controller_port, "enroll": self.d.enroll_port,
                "agent": self.d.agent_port}[target]

    def channel(self, target: str, who: TlsId | str | None,
                options: Sequence[tuple[str, Any]] = ()) -> grpc.Channel:
        """A TLS channel to ``target`` ("controller", "enroll", "agent") presenting ``who``."""
        if isinstance(who, str):
            who = self.identity(who)
        creds = grpc.ssl_channel_credentials(
            root_certificates=self.ca_pem, private_key=who.key if who else None,
            certificate_chain=who.cert if who else None)
        return grpc.secure_channel(
            f"127.0.0.1:{self.port(target)}", creds,
            options=[("grpc.ssl_target_name_override", SERVER_NAMES[target]), *options])

    def local_channel(self) -> grpc.Channel:
        """The customer's own channel: the agent's Unix socket."""
        return grpc.insecure_channel(f"unix:{self.d.agent_home / 'rmagent.sock'}")

    # -- the customer's side, on the Unix socket -------------------------------------------

    def offer_grant(self, envelope: p.Envelope) -> agent_pb2.ApproveResponse:
        with self.local_channel() as channel:
            stub = agent_pb2_grpc.AgentLocalServiceStub(channel)
            return stub.Approve(agent_pb2.ApproveRequest(grant=to_wire(envelope)),
                                timeout=RPC_TIMEOUT)

    def agent_requests(self) -> dict[str, str]:
        """Request id -> status, as the agent keeps them (fetching new ones first)."""
        with self.local_channel() as channel:
            stub = agent_pb2_grpc.AgentLocalServiceStub(channel)
            reply = stub.ListRequests(agent_pb2.ListRequestsRequest(include_decided=True,
                                                                    sync=True),
                                      timeout=RPC_TIMEOUT)
        assert not reply.sync_error, reply.sync_error
        return {p.peek(r.request.payload, "request_id"): r.status for r in reply.requests}

    def agent_grants(self) -> dict[str, str]:
        """Grant id -> status by the agent's clock."""
        with self.local_channel() as channel:
            stub = agent_pb2_grpc.AgentLocalServiceStub(channel)
            reply = stub.ListGrants(agent_pb2.ListGrantsRequest(include_inactive=True),
                                    timeout=RPC_TIMEOUT)
        return {p.peek(g.grant.payload, "grant_id"): g.status for g in reply.grants}

    # -- the engineer's side ---------------------------------------------------------------

    def pending_request(self, case_id: str, scopes: Sequence[str] = ("diag.read",),
                        duration_seconds: int = 7200) -> p.AccessRequest:
        """An access request signed by alice, filed at the controller, received by the agent."""
        envelope = p.request_access(
            self.engineer_key(), request_id=new_id("R-"), case_id=case_id, agent_id=AGENT_ID,
            engineer=ENGINEER, scopes=scopes, duration_seconds=duration_seconds,
            reason="e2e: a request the customer is about to decide", now=int(time.time()))
        with self.channel("controller", "engineer") as channel:
            rpc.EngineerServiceStub(channel).RequestAccess(
                pb.RequestAccessRequest(request=to_wire(envelope)), timeout=RPC_TIMEOUT)
        request = p.verify_access_request(envelope)
        assert self.agent_requests().get(request.request_id) == "pending"
        return request

    def open_case(self, assignee: str = ENGINEER, customer_id: str = "acme") -> str:
        """A new case, opened by the admin (through the admin API, as rmctl would)."""
        with self.channel("controller", "admin") as channel:
            reply = rpc.CaseServiceStub(channel).OpenCase(pb.OpenCaseRequest(
                customer_id=customer_id, title=f"e2e {secrets.token_hex(3)}",
                assignee=assignee), timeout=RPC_TIMEOUT)
        return str(reply.case.case_id)

    def grant_session(self, *, scopes: Sequence[str] = ("diag.read",),
                      approve_scopes: Sequence[str] = (), duration_seconds: int = 7200,
                      case_id: str | None = None) -> Granted:
        """A session under a grant: a case and alice's signed request at the controller,
        received by the agent; the customer's ``rmagent approve`` (narrowed to
        ``approve_scopes`` if given); alice's ``rmctl session open``."""
        d = self.d
        request = self.pending_request(case_id or self.open_case(), scopes, duration_seconds)
        approve = ["approve", request.request_id, "--yes", "--json"]
        for scope in approve_scopes:
            approve += ["--scope", scope]
        grant = d.json(d.rmagent(*approve))
        assert grant["reported"], grant
        session = d.json(d.engineer("session", "open", "--case", request.case_id, "--agent",
                                    AGENT_ID, "--grant", grant["grant_id"], "--json"))
        return Granted(request.case_id, request.request_id, str(grant["grant_id"]),
                       str(session["session_id"]), tuple(grant["scopes"]))

    def sign_operation(self, *, session_id: str, seq: int, grant_id: str, case_id: str,
                       operation: str = "diag.system", params: dict[str, Any] | None = None,
                       agent_id: str = AGENT_ID, key: p.PrivateKey | None = None) -> p.Envelope:
        statement = p.Operation(session_id=session_id, seq=seq, grant_id=grant_id,
                                agent_id=agent_id, case_id=case_id, operation=operation,
                                params=params or {}, issued_at=int(time.time()))
        return p.sign(p.OPERATION, statement.to_payload(), key or self.engineer_key())

    def session_operation(self, granted: Granted, operation: str = "diag.system", *,
                          params: dict[str, Any] | None = None, key: p.PrivateKey | None = None,
                          **changes: Any) -> p.Envelope:
        """The next operation of ``granted``'s session (sequence number reserved in the
        engineer's home, as rmctl does), with ``changes`` to its statement."""
        _, seq = SessionStore(self.d.engineer_home).reserve_seq(granted.session_id)
        fields = {"session_id": granted.session_id, "seq": seq, "grant_id": granted.grant_id,
                  "case_id": granted.case_id, "operation": operation, "params": params,
                  "key": key, **changes}
        return self.sign_operation(**fields)

    def execute(self, envelope: p.Envelope | common_pb2.Envelope,
                who: TlsId | str = "controller") -> agent_pb2.ExecuteResponse:
        """AgentService.Execute straight at the agent (by default with the controller's cert)."""
        wire = envelope if isinstance(envelope, common_pb2.Envelope) else to_wire(envelope)
        with self.channel("agent", who) as channel:
            return agent_pb2_grpc.AgentServiceStub(channel).Execute(
                agent_pb2.ExecuteRequest(operation=wire), timeout=RPC_TIMEOUT)

    def run_through_controller(self, envelope: p.Envelope) -> agent_pb2.ExecuteResponse:
        """EngineerService.RunOperation as alice: the controller records and relays it."""
        with self.channel("controller", "engineer") as channel:
            return rpc.EngineerServiceStub(channel).RunOperation(
                agent_pb2.ExecuteRequest(operation=to_wire(envelope)), timeout=RPC_TIMEOUT)

    def check_receipt(self, envelope: p.Envelope, reply: agent_pb2.ExecuteResponse) -> p.Receipt:
        """The agent's receipt, verified with its enrolled key and bound to this exchange."""
        key = self.agent_public_key()
        receipt = p.Receipt.from_payload(
            p.verify(from_wire(reply.receipt), p.RECEIPT, {p.key_id(key): key}))
        assert receipt.operation_digest == p.digest(envelope)
        assert receipt.outcome == "ok"
        assert receipt.result_digest == "sha256:" + _sha256(reply.result_json)
        return receipt

    # -- the agent's local operation log (agent-log.db, read-only) ---------------------------

    def agent_log(self, after: int = 0) -> list[dict[str, Any]]:
        path = self.d.agent_home / "agent-log.db"
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
        try:
            conn.row_factory = sqlite3.Row
            rows = conn.execute(
                "SELECT id, at, kind, attempt_id, session_id, seq, grant_id, case_id, engineer, "
                "operation, params_json, outcome, reason, detail, operation_digest, "
                "result_digest FROM entries WHERE id > ? ORDER BY id", (after,)).fetchall()
        finally:
            conn.close()
        return [dict(row) for row in rows]

    def agent_log_mark(self) -> int:
        rows = self.agent_log()
        return int(rows[-1]["id"]) if rows else 0

    def assert_denied(self, envelope: p.Envelope, mark: int, reason: str,
                      detail: str | None = None) -> dict[str, Any]:
        """``envelope`` was recorded once after ``mark`` as denied for ``reason``, and nothing
        ran: no result was recorded for it (nor for anything else since ``mark``)."""
        entries = self.agent_log(mark)
        attempts = [e for e in entries
                    if e["kind"] == "attempt" and e["operation_digest"] == p.digest(envelope)]
        assert len(attempts) == 1, entries
        attempt = attempts[0]
        assert (attempt["outcome"], attempt["reason"]) == ("denied", reason), attempt
        if detail is not None:
            assert attempt["detail"] == detail, attempt
        assert [e for e in entries if e["kind"] == "result"] == [], entries
        return attempt

    def assert_allowed_and_ran(self, envelope: p.Envelope, mark: int) -> None:
        entries = self.agent_log(mark)
        attempts = [e for e in entries
                    if e["kind"] == "attempt" and e["operation_digest"] == p.digest(envelope)]
        assert [a["outcome"] for a in attempts] == ["allowed"], entries
        results = [e for e in entries if e["kind"] == "result"
                   and e["attempt_id"] == attempts[0]["id"]]
        assert [r["outcome"] for r in results] == ["ok"], entries

    def positive_control(self, granted: Granted) -> None:
        """A correct operation in ``granted``'s session, relayed straight to the agent by the
        controller's identity, runs: whatever a test saw refused was refused for its fault."""
        envelope = self.session_operation(granted)
        mark = self.agent_log_mark()
        reply = self.execute(envelope)
        assert json.loads(reply.result_json)["hostname"]
        self.check_receipt(envelope, reply)
        self.assert_allowed_and_ran(envelope, mark)

    # -- records, as the controller keeps them -----------------------------------------------

    def consent_log(self, case_id: str) -> list[pb.ConsentEntry]:
        with self.channel("controller", "admin") as channel:
            reply = rpc.RecordsServiceStub(channel).ConsentLog(
                pb.ConsentLogRequest(case_id=case_id), timeout=RPC_TIMEOUT)
        return list(reply.entries)

    def session_log(self, session_id: str) -> pb.GetSessionResponse:
        """A session and its events as the controller recorded them (read as the admin)."""
        with self.channel("controller", "admin") as channel:
            return rpc.RecordsServiceStub(channel).GetSession(
                pb.GetSessionRequest(session_id=session_id), timeout=RPC_TIMEOUT)

    def still_serving(self, granted: Granted) -> None:
        """Both servers answer health checks, and a real diagnostic runs end to end."""
        for target, who in (("controller", "admin"), ("agent", "controller")):
            with self.channel(target, who) as channel:
                answer = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=RPC_TIMEOUT)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING, target
        envelope = self.session_operation(granted)
        mark = self.agent_daemon_log.mark()
        reply = self.run_through_controller(envelope)
        assert json.loads(reply.result_json)["hostname"]
        assert reply.event_id > 0
        self.check_receipt(envelope, reply)
        if self.dial_out:  # relayed over the agent's own stream, not by dialling it
            assert self.agent_daemon_log.wait_for(
                mark, lambda r: r.get("event") == "dialout.answered") is not None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Both agent modes for the modules in BOTH_MODES; the others use the fixture below."""
    module = metafunc.module.__name__.rpartition(".")[2]
    if "e2e_mode" in metafunc.fixturenames and module in BOTH_MODES:
        metafunc.parametrize("e2e_mode", list(_AGENT_MODES), scope="package")


@pytest.fixture(scope="package")
def e2e_mode() -> str:
    """The deployment's mode where a module is not run in both: direct."""
    return "direct"


def start_deployment(root: Path, mode: str = "direct") -> E2E:
    """A started deployment under ``root``: the steps of ``Deployment.standard_setup``, with
    the independent ones (agent, engineer, auditor) run side by side. Nothing is left
    running if set-up fails. ``mode`` is the agent's mode in agent.toml."""
    d = Deployment(root, mode=mode)
    try:
        d.initialise()
        d.start_controller()
        d.rmctl("customer", "add", "acme", "--name", "Acme Corp",
                "--contract-start", "2026-01-01", "--contract-end", "2030-12-31")

        def agent() -> None:
            d.enroll_agent()
            d.start_agent()

        with ThreadPoolExecutor(max_workers=3) as pool:
            done = [pool.submit(agent),
                    pool.submit(d.login, "engineer", ENGINEER, d.engineer_home),
                    pool.submit(d.login, "auditor", "bob", d.auditor_home)]
            for future in done:
                future.result()
    except BaseException:
        d.stop()
        raise
    return E2E(d)


@pytest.fixture(scope="package")
def deployment(tmp_path_factory: pytest.TempPathFactory, e2e_mode: str) -> Iterator[E2E]:
    e2e = start_deployment(tmp_path_factory.mktemp("e2e"), _AGENT_MODES[e2e_mode])
    try:
        yield e2e
    finally:
        e2e.d.stop()


@pytest.fixture(scope="module")
def deployment_factory(tmp_path_factory: pytest.TempPathFactory,
                       e2e_mode: str) -> Iterator[Callable[..., E2E]]:
    """``make(mode=None)``: a fresh deployment, its agent in ``mode`` (default: the
    module's ``e2e_mode``)."""
    made: list[E2E] = []

    def make(mode: str | None = None) -> E2E:
        e2e = start_deployment(tmp_path_factory.mktemp("fresh"), mode or _AGENT_MODES[e2e_mode])
        made.append(e2e)
        return e2e

    try:
        yield make
    finally:
        for e2e in made:
            e2e.d.stop()


@pytest.fixture
def granted_session(deployment: E2E) -> Callable[..., Granted]:
    """``granted_session(scopes=..., approve_scopes=..., duration_seconds=..., case_id=...)``."""
    return deployment.grant_session


@pytest.fixture(scope="module")
def deployment_with_session(
        deployment_factory: Callable[[], E2E]) -> Callable[..., tuple[E2E, Granted]]:
    """``deployment_with_session(**grant_session_options)``: a fresh deployment, granted."""
    def make(**options: Any) -> tuple[E2E, Granted]:
        e2e = deployment_factory()
        return e2e, e2e.grant_session(**options)
    return make
