"""The real controller (serve() on port 0): enrollment, authorization, health, reflection."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from controller.config import load_config
from controller.errors import ConfigError, DeploymentExists
from controller.server import serve
from controller.setup import init_deployment
from pki import certs
from pki.enroll import EnrollmentRefused, enroll
from pki.identity import Identity
from pki.tls import TlsFiles, secure_channel
from pki.token import JoinToken
from rmaint.v1 import controller_pb2 as pb
from rmaint.v1 import controller_pb2_grpc as rpc
from tests.integration.controller._support import TD, Deployment


async def _token(d: Deployment, role: str, subject: str, customer_id: str = "",
                 ttl: int = 0) -> JoinToken:
    admin = rpc.AdminServiceStub(d.channel(d.admin()))
    if customer_id:
        await admin.AddCustomer(pb.AddCustomerRequest(customer=pb.Customer(
            customer_id=customer_id, name="Acme", contract_start="2020-01-01",
            contract_end="2099-12-31")))
    reply = await admin.CreateJoinToken(pb.CreateJoinTokenRequest(
        role=role, subject=subject, customer_id=customer_id, ttl_seconds=ttl))
    return JoinToken.decode(reply.token)


async def _raw_enroll(d: Deployment, token: JoinToken) -> pb.EnrollResponse:
    stub = rpc.EnrollmentServiceStub(d.enroll_channel())
    csr = certs.make_csr(certs.generate_key(), Identity(TD, "engineer", "x"))
    reply: pb.EnrollResponse = await stub.Enroll(
        pb.EnrollRequest(token_secret=token.secret, csr_pem=csr))
    return reply


async def test_engineer_enrolls_with_a_valid_token(deployment: Deployment) -> None:
    token = await _token(deployment, "engineer", "alice")
    assert token.address == f"127.0.0.1:{deployment.controller.enroll_port}"
    key = certs.generate_key()
    enrolled = await enroll(token, key)
    assert enrolled.identity == Identity(TD, "engineer", "alice")
    assert enrolled.controller_address == deployment.controller.address
    cert = x509.load_pem_x509_certificate(enrolled.certificate_pem)
    assert certs.identity_of(cert) == enrolled.identity
    assert cert.public_key() == key.public_key()
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime <= certs.ENGINEER_CERT_LIFETIME + certs._BACKDATE
    admin = rpc.AdminServiceStub(deployment.channel(deployment.admin()))
    people = (await admin.ListPrincipals(pb.ListPrincipalsRequest())).principals
    assert [(x.role, x.name) for x in people] == [("engineer", "alice")]


async def test_a_token_works_once(deployment: Deployment) -> None:
    token = await _token(deployment, "auditor", "bob")
    await _raw_enroll(deployment, token)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _raw_enroll(deployment, token)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert refused.value.details() == "enrollment refused"


async def test_an_expired_token_is_refused(deployment: Deployment) -> None:
    token = await _token(deployment, "engineer", "alice", ttl=60)
    deployment.clock.advance(61)
    with pytest.raises(EnrollmentRefused, match="enrollment refused"):
        await enroll(token, certs.generate_key())
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _raw_enroll(deployment, token)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert refused.value.details() == "enrollment refused"


async def test_an_unknown_token_looks_like_any_refused_one(deployment: Deployment) -> None:
    token = await _token(deployment, "engineer", "alice")
    forged = JoinToken(token.address, token.ca_pin, token.trust_domain, "not-the-secret")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _raw_enroll(deployment, forged)
    assert (refused.value.code(), refused.value.details()) == (
        grpc.StatusCode.UNAUTHENTICATED, "enrollment refused")


async def test_a_bad_csr_is_invalid_and_leaves_the_token_usable(deployment: Deployment) -> None:
    token = await _token(deployment, "engineer", "alice")
    stub = rpc.EnrollmentServiceStub(deployment.enroll_channel())
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await stub.Enroll(pb.EnrollRequest(token_secret=token.secret, csr_pem=b"junk"))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "certificate signing request" in (bad.value.details() or "")
    assert (await _raw_enroll(deployment, token)).identity.endswith("/engineer/alice")


async def test_agent_enrollment_records_customer_and_address(deployment: Deployment) -> None:
    token = await _token(deployment, "agent", "web-1", customer_id="acme")
    enrolled = await enroll(token, certs.generate_key(), agent_address="127.0.0.1:7501")
    assert enrolled.identity.uri == f"spiffe://{TD}/agent/web-1"
    admin = rpc.AdminServiceStub(deployment.channel(deployment.admin()))
    agents = (await admin.ListAgents(pb.ListAgentsRequest(customer_id="acme"))).agents
    assert [(a.agent_id, a.address, a.last_seen) for a in agents] == [
        ("web-1", "127.0.0.1:7501", 0)]


async def test_admin_calls_with_the_admin_certificate(deployment: Deployment) -> None:
    admin = rpc.AdminServiceStub(deployment.channel(deployment.admin()))
    customer = pb.Customer(customer_id="acme", name="Acme Corp", contract_start="2026-01-01",
                           contract_end="2030-12-31")
    added = await admin.AddCustomer(pb.AddCustomerRequest(customer=customer))
    assert added.customer == customer
    listed = await admin.ListCustomers(pb.ListCustomersRequest())
    assert list(listed.customers) == [customer]


@pytest.mark.parametrize(("role", "method"), [
    ("engineer", "/rmaint.v1.AdminService/ListCustomers"),
    ("auditor", "/rmaint.v1.CaseService/OpenCase"),
    ("agent", "/rmaint.v1.EngineerService/ListMyRequests"),
    ("engineer", "/rmaint.v1.AgentReportService/FetchRequests"),
    ("admin", "/rmaint.v1.Unknown/Method"),
])
async def test_wrong_role_is_denied_uniformly(deployment: Deployment, role: str,
                                              method: str) -> None:
    person = deployment.admin() if role == "admin" else deployment.person(role, "mallory")
    call = deployment.channel(person).unary_unary(method)
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await call(b"")
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert denied.value.details() == "permission denied"


async def test_engineer_calling_admin_rpc_is_denied(deployment: Deployment) -> None:
    engineer = deployment.person("engineer", "alice")
    admin = rpc.AdminServiceStub(deployment.channel(engineer))
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await admin.CreateJoinToken(pb.CreateJoinTokenRequest(role="engineer", subject="eve"))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert denied.value.details() == "permission denied"


async def test_a_foreign_trust_domain_is_unauthenticated(deployment: Deployment) -> None:
    # Signed by our CA, but naming another trust domain: never trusted as ours.
    stranger = deployment.person("admin", "admin", trust_domain="other.test")
    admin = rpc.AdminServiceStub(deployment.channel(stranger))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await admin.ListCustomers(pb.ListCustomersRequest())
    assert (refused.value.code(), refused.value.details()) == (
        grpc.StatusCode.UNAUTHENTICATED, "unauthenticated")


async def test_enrollment_port_serves_only_enrollment(deployment: Deployment) -> None:
    channel = deployment.enroll_channel()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await rpc.AdminServiceStub(channel).ListCustomers(pb.ListCustomersRequest())
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
    health = health_pb2_grpc.HealthStub(channel)
    answer = await health.Check(health_pb2.HealthCheckRequest(
        service="rmaint.v1.EnrollmentService"))
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    # List, open to anyone here as Check is, answers (it was an internal error, logged
    # with a traceback per call: a way to flood the log without a certificate).
    listed = await health.List(health_pb2.HealthListRequest())
    assert {name: s.status for name, s in listed.statuses.items()} == {
        "": health_pb2.HealthCheckResponse.SERVING,
        "rmaint.v1.EnrollmentService": health_pb2.HealthCheckResponse.SERVING}


async def test_health_and_reflection_on_the_api(deployment: Deployment) -> None:
    channel = deployment.channel(deployment.person("auditor", "bob"))
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "rmaint.v1.AdminService", "rmaint.v1.AgentReportService"):
        answer = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    stream = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name async for reply in stream for s in reply.list_services_response.service}
    assert {"rmaint.v1.EngineerService", "grpc.health.v1.Health"} <= names


async def test_malformed_input_is_invalid_and_the_server_keeps_serving(
        deployment: Deployment) -> None:
    admin = rpc.AdminServiceStub(deployment.channel(deployment.admin()))
    bad = pb.Customer(customer_id="acme", name="Acme", contract_start="2026-13-01",
                      contract_end="2030-12-31")
    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await admin.AddCustomer(pb.AddCustomerRequest(customer=bad))
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "contract_start" in (invalid.value.details() or "")
    assert not (await admin.ListCustomers(pb.ListCustomersRequest())).customers


async def test_a_second_controller_on_the_same_port_fails_clearly(
        deployment: Deployment) -> None:
    text = deployment.files.config.read_text().replace(
        'listen = "127.0.0.1:0"', f'listen = "127.0.0.1:{deployment.controller.port}"', 1)
    deployment.files.config.write_text(text)
    assert load_config(deployment.home).listen.port == deployment.controller.port != 0
    with pytest.raises(ConfigError, match="cannot listen on"):
        await serve(deployment.home, log_to_stderr=False)


async def test_init_refuses_an_existing_deployment(deployment: Deployment) -> None:
    before = deployment.files.ca_key.read_bytes()
    with pytest.raises(DeploymentExists, match="already holds a deployment"):
        init_deployment(deployment.home, TD)
    assert deployment.files.ca_key.read_bytes() == before


async def test_health_watch_passes_the_interceptor(deployment: Deployment) -> None:
    health = health_pb2_grpc.HealthStub(deployment.enroll_channel())
    stream = health.Watch(health_pb2.HealthCheckRequest(service=""))
    first = await stream.read()
    assert first.status == health_pb2.HealthCheckResponse.SERVING
    stream.cancel()


async def test_run_serves_until_sigterm(tmp_path: Path) -> None:
    home = tmp_path / "home"
    init_deployment(home, TD, listen="127.0.0.1:0", enroll_listen="127.0.0.1:0")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys, pathlib, controller.server as s; "
        "s.run(pathlib.Path(sys.argv[1]))", str(home),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        started = await _logged(home / "controller.log", "controller.started")
        files = TlsFiles(home / "admin.key", home / "admin.crt", home / "ca.crt")
        async with secure_channel(started["address"], files,
                                  Identity(TD, "controller")) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()
    lines = [json.loads(line)["event"] for line in stderr.decode().splitlines()]
    # The audit log opens before serving and signs its last checkpoint after it stopped.
    events = [event for event in lines if not event.startswith("audit.")]
    assert events[0] == "controller.started" and events[-1] == "controller.stopping"
    assert lines[0] == "audit.log_opened"


async def _logged(path: Path, event: str) -> dict[str, str]:
    """The first JSON log line for ``event``, waiting for the process to write it."""
    for _ in range(200):
        if path.exists():
            for line in path.read_text().splitlines():
                record: dict[str, str] = json.loads(line)
                if record["event"] == event:
                    return record
        await asyncio.sleep(0.05)
    raise AssertionError(f"{event} never logged in {path}")
