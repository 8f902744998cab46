"""One table authorizes every RPC the agent serves; unknown means denied."""

from __future__ import annotations

import time

import grpc
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from agent.authz import LOCAL, TABLE, Refusal, check
from pki import certs, tls
from pki.identity import Identity
from rmaint.v1 import agent_pb2

SERVICES = [
    agent_pb2.DESCRIPTOR.services_by_name["AgentService"],
    agent_pb2.DESCRIPTOR.services_by_name["AgentLocalService"],
    health_pb2.DESCRIPTOR.services_by_name["Health"],
    reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"],
]


def test_every_method_has_a_table_entry() -> None:
    methods = {f"/{s.full_name}/{m.name}" for s in SERVICES for m in s.methods}
    assert methods == set(TABLE)


def test_only_the_controller_may_execute() -> None:
    assert TABLE["/rmaint.v1.AgentService/Execute"] == frozenset({"controller"})
    assert all(rule == LOCAL for name, rule in TABLE.items() if "AgentLocalService" in name)


class FakeContext:
    def __init__(self, pem: bytes | None) -> None:
        self._pem = pem

    def auth_context(self) -> dict[str, list[bytes]]:
        return {"x509_pem_cert": [self._pem]} if self._pem else {}


def _pem(identity: Identity, ca_domain: str = "example.test") -> bytes:
    ca_key = certs.generate_key()
    ca = certs.create_ca(ca_key, ca_domain, now=time.time())
    leaf = certs.issue(ca_key, ca, certs.generate_key().public_key(), identity, now=time.time(),
                       lifetime=certs.SERVICE_CERT_LIFETIME)
    return certs.cert_pem(leaf)


def _check(rule: object, pem: bytes | None, transport: str = "mtls") -> str:
    return check(rule, transport=transport, context=FakeContext(pem),  # type: ignore[arg-type]
                 trust_domain="example.test")


EXECUTE = TABLE["/rmaint.v1.AgentService/Execute"]
HEALTH = TABLE["/grpc.health.v1.Health/Check"]


def test_controller_is_allowed() -> None:
    assert _check(EXECUTE, _pem(Identity("example.test", "controller"))) == \
        "spiffe://example.test/controller"


@pytest.mark.parametrize("role", ["engineer", "agent", "admin", "auditor"])
def test_other_roles_are_denied(role: str) -> None:
    with pytest.raises(Refusal) as refusal:
        _check(EXECUTE, _pem(Identity("example.test", role, "alice")))
    assert refusal.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert refusal.value.reason == f"role {role} not allowed"
    assert _check(HEALTH, _pem(Identity("example.test", role, "alice")))


def test_no_identity_or_foreign_domain_is_unauthenticated() -> None:
    for pem in (None, _pem(Identity("other.test", "controller"), "other.test")):
        with pytest.raises(Refusal) as refusal:
            _check(EXECUTE, pem)
        assert refusal.value.code == grpc.StatusCode.UNAUTHENTICATED


def test_unknown_and_transport_mismatches_are_denied() -> None:
    controller = _pem(Identity("example.test", "controller"))
    for rule, transport in ((None, "mtls"), (LOCAL, "mtls"), (EXECUTE, LOCAL), (None, LOCAL)):
        with pytest.raises(Refusal) as refusal:
            _check(rule, controller, transport)
        assert refusal.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert _check(LOCAL, None, LOCAL) == "local"


def test_identities_are_parsed_once_per_certificate(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same certificate bytes give the same identity without parsing them again;
    other bytes are parsed, and the decision is made afresh for every call."""
    parsed: list[bytes] = []
    real = tls.peer_identity

    def counting(context: FakeContext) -> Identity | None:
        parsed.append(context.auth_context()["x509_pem_cert"][0])
        return real(context)
    monkeypatch.setattr("agent.authz.peer_identity", counting)
    controller = _pem(Identity("example.test", "controller"))
    engineer = _pem(Identity("example.test", "engineer", "alice"))
    for _ in range(3):
        assert _check(EXECUTE, controller) == "spiffe://example.test/controller"
        with pytest.raises(Refusal, match="role engineer not allowed"):
            _check(EXECUTE, engineer)
    assert parsed == [controller, engineer]
    broken = b"-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n"
    for _ in range(2):
        with pytest.raises(Refusal) as refusal:
            _check(EXECUTE, broken)
        assert refusal.value.code == grpc.StatusCode.UNAUTHENTICATED
