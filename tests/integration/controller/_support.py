"""Helpers for the controller's integration tests: a fake clock, identities issued by the
deployment's CA, channels to the real server, and a fake agent that answers Execute."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

import permissions as p
from controller.config import HomeFiles
from controller.server import RunningController
from controller.store import Store, migrate
from pki import certs, files
from pki.identity import Identity
from pki.tls import TlsFiles, secure_channel, server_credentials
from rmaint.envelopes import from_wire, to_wire
from rmaint.v1 import agent_pb2, agent_pb2_grpc

TD = "example.test"


def migrate_down(url: str) -> None:
    """Empty a shared database for the next test (migrations down to nothing)."""
    store = Store.open(url)
    try:
        migrate.downgrade(store)
    finally:
        store.close()


class FakeClock:
    """The controller's clock in tests: moves only when told to."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Person:
    """A key with a certificate from the deployment CA, as files a TLS client can use."""

    identity: Identity
    key: ec.EllipticCurvePrivateKey
    tls: TlsFiles

    @property
    def key_id(self) -> str:
        return p.key_id(self.key.public_key())


@dataclass
class Deployment:
    home: Path
    controller: RunningController
    clock: FakeClock
    scratch: Path
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    @property
    def files(self) -> HomeFiles:
        return HomeFiles.of(self.home)

    def person(self, role: str, name: str, key: ec.EllipticCurvePrivateKey | None = None,
               *, trust_domain: str = TD, cert_pem: bytes | None = None) -> Person:
        """An identity certified by this deployment's CA (or ``cert_pem`` if given)."""
        key = key or certs.generate_key()
        identity = Identity(trust_domain, role, name)
        if cert_pem is None:
            ca_key = files.read_ec_key(self.files.ca_key)
            ca_cert = files.read_cert(self.files.ca_cert)
            cert = certs.issue(ca_key, ca_cert, key.public_key(), identity,
                               now=time.time(), lifetime=certs.ENGINEER_CERT_LIFETIME)
            cert_pem = certs.cert_pem(cert)
        folder = self.scratch / f"{role}-{name}-{p.key_id(key.public_key())[7:15]}"
        files.write_key(folder / "id.key", key)
        files.write_public(folder / "id.crt", cert_pem)
        files.write_public(folder / "ca.crt", self.files.ca_cert.read_bytes())
        return Person(identity, key, TlsFiles(folder / "id.key", folder / "id.crt",
                                              folder / "ca.crt"))

    def admin(self) -> Person:
        f = self.files
        return Person(Identity(TD, "admin", "admin"), files.read_ec_key(f.admin_key),
                      TlsFiles(f.admin_key, f.admin_cert, f.ca_cert))

    def channel(self, person: Person) -> grpc.aio.Channel:
        """A mutual-TLS channel to the API as ``person``; closed by the fixture."""
        channel = secure_channel(f"127.0.0.1:{self.controller.port}", person.tls,
                                 Identity(TD, "controller"))
        self.channels.append(channel)
        return channel

    def enroll_channel(self) -> grpc.aio.Channel:
        """A server-only TLS channel to the enrollment port."""
        creds = grpc.ssl_channel_credentials(root_certificates=self.files.ca_cert.read_bytes())
        channel = grpc.aio.secure_channel(
            f"127.0.0.1:{self.controller.enroll_port}", creds,
            options=[("grpc.ssl_target_name_override", f"controller.{TD}")])
        self.channels.append(channel)
        return channel

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()


class FakeAgent(agent_pb2_grpc.AgentServiceServicer):
    """Answers Execute like an agent that allowed the operation, or refuses on demand."""

    def __init__(self, agent: Person) -> None:
        self.agent = agent
        self.refuse: grpc.StatusCode | None = None
        self.refusal = "permission denied"
        self.calls: list[p.Envelope] = []
        self.server: grpc.aio.Server | None = None
        self.port = 0

    async def start(self) -> str:
        self.server = grpc.aio.server()
        agent_pb2_grpc.add_AgentServiceServicer_to_server(self, self.server)
        self.port = self.server.add_secure_port("127.0.0.1:0", server_credentials(self.agent.tls))
        await self.server.start()
        return f"127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(None)

    async def Execute(self, request: agent_pb2.ExecuteRequest,
                      context: grpc.aio.ServicerContext) -> agent_pb2.ExecuteResponse:
        envelope = from_wire(request.operation)
        self.calls.append(envelope)
        if self.refuse is not None:
            await context.abort(self.refuse, self.refusal)
        op = p.Operation.from_payload(envelope.payload)
        result = json.dumps({"hostname": "web-1", "operation": op.operation}).encode()
        receipt = p.Receipt(
            agent_id=self.agent.identity.name, session_id=op.session_id, seq=op.seq,
            operation=op.operation, operation_digest=p.digest(envelope), outcome="ok",
            result_digest="sha256:" + hashlib.sha256(result).hexdigest(), at=op.issued_at,
            log_index=len(self.calls),
        )
        signed = p.sign(p.RECEIPT, receipt.to_payload(), self.agent.key)
        return agent_pb2.ExecuteResponse(result_json=result, receipt=to_wire(signed))


def approver() -> tuple[ed25519.Ed25519PrivateKey, str, bytes]:
    """A customer approver key, its id and its raw public key."""
    key = ed25519.Ed25519PrivateKey.generate()
    return key, p.key_id(key.public_key()), p.public_key_bytes(key.public_key())


def operation(engineer: Person, *, session_id: str, seq: int, grant_id: str, case_id: str,
              agent_id: str = "web-1", name: str = "diag.system",
              params: dict[str, Any] | None = None, issued_at: int = 0) -> p.Envelope:
    statement = p.Operation(session_id=session_id, seq=seq, grant_id=grant_id,
                            agent_id=agent_id, case_id=case_id, operation=name,
                            params=params or {}, issued_at=issued_at)
    return p.sign(p.OPERATION, statement.to_payload(), engineer.key)
