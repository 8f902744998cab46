"""A deployment made at test time with pki.certs: CA, controller, agent, engineer, approver.

The agent home listens on 127.0.0.1:0; its controller address points at a closed port
unless a test starts the fake controller. Clients use real mTLS on loopback.
"""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

import permissions as p
from agent import config as agent_config
from agent.daemon import AgentHandle, start
from agent.state import StateStore
from pki import certs
from pki.files import write_key, write_public
from pki.identity import Identity
from pki.tls import TlsFiles, secure_channel
from rmaint.envelopes import to_wire
from rmaint.v1 import agent_pb2, agent_pb2_grpc

TD = "example.test"
AGENT_ID = "web-1"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Deployment:
    root: Path
    ca_key: ec.EllipticCurvePrivateKey
    ca_pem: bytes
    home: Path
    approver: ed25519.Ed25519PrivateKey
    engineer_key: ec.EllipticCurvePrivateKey

    def issue(self, identity: Identity, directory: Path, name: str,
              key: ec.EllipticCurvePrivateKey | None = None) -> TlsFiles:
        key = key or certs.generate_key()
        ca = x509.load_pem_x509_certificate(self.ca_pem)
        cert = certs.issue(self.ca_key, ca, key.public_key(), identity, now=time.time(),
                           lifetime=certs.SERVICE_CERT_LIFETIME, ip_addresses=("127.0.0.1",))
        files = TlsFiles(directory / f"{name}.key", directory / f"{name}.crt",
                         directory / "ca.crt")
        write_key(files.key, key)
        write_public(files.cert, certs.cert_pem(cert))
        write_public(files.ca, self.ca_pem)
        return files

    @property
    def controller(self) -> TlsFiles:
        return self.issue(Identity(TD, "controller"), self.root / "controller", "controller")

    @property
    def engineer(self) -> TlsFiles:
        return self.issue(Identity(TD, "engineer", "alice"), self.root / "alice", "identity",
                          self.engineer_key)

    def request(self, request_id: str = "R-1", scopes: tuple[str, ...] = ("diag.read",)
                ) -> p.Envelope:
        return p.request_access(self.engineer_key, request_id=request_id, case_id="C-0001",
                                agent_id=AGENT_ID, engineer="alice", scopes=scopes,
                                duration_seconds=3600, reason="slow web-1",
                                now=int(time.time()))

    def receive(self, envelope: p.Envelope) -> None:
        """Store a request as the sync loop would after fetching it."""
        state = StateStore(self.home / "state.db")
        try:
            state.add_request(envelope, p.verify_access_request(envelope), time.time())
        finally:
            state.close()

    def grant(self, request: p.Envelope, grant_id: str = "G-1") -> p.Envelope:
        return p.approve(p.verify_access_request(request), self.approver, grant_id=grant_id,
                         now=int(time.time()))

    def operation(self, seq: int, operation: str = "diag.system",
                  params: dict[str, object] | None = None, grant_id: str = "G-1"
                  ) -> agent_pb2.ExecuteRequest:
        statement = p.Operation(session_id="S-0123456789ab", seq=seq, grant_id=grant_id,
                                agent_id=AGENT_ID, case_id="C-0001", operation=operation,
                                params=params or {}, issued_at=int(time.time()))
        envelope = p.sign(p.OPERATION, statement.to_payload(), self.engineer_key)
        return agent_pb2.ExecuteRequest(operation=to_wire(envelope))

    def set_controller(self, address: str) -> None:
        config = agent_config.load(self.home)
        agent_config.save(self.home, dataclasses.replace(config, controller=address))


@pytest.fixture
def deployment(tmp_path: Path) -> Deployment:
    ca_key = certs.generate_key()
    ca_pem = certs.cert_pem(certs.create_ca(ca_key, TD, now=time.time()))
    home = tmp_path / "home"
    approver = ed25519.Ed25519PrivateKey.generate()
    dep = Deployment(tmp_path, ca_key, ca_pem, home, approver, certs.generate_key())
    dep.issue(Identity(TD, "agent", AGENT_ID), home, "agent")
    agent_config.save(home, agent_config.AgentConfig(
        id=AGENT_ID, trust_domain=TD, listen="127.0.0.1:0",
        controller=f"127.0.0.1:{closed_port()}"))
    agent_config.pin_approver(home, "customer", approver.public_key())
    return dep


StartAgent = Callable[[], Awaitable[AgentHandle]]


@pytest.fixture
async def start_agent(deployment: Deployment) -> AsyncIterator[StartAgent]:
    """Start the daemon on the deployment's home; everything started is stopped after."""
    handles: list[AgentHandle] = []

    async def make() -> AgentHandle:
        handle = await start(deployment.home)
        handles.append(handle)
        return handle

    yield make
    for handle in handles:
        await handle.stop()


@pytest.fixture
async def agent(start_agent: StartAgent) -> AgentHandle:
    return await start_agent()


@dataclass
class Clients:
    controller: agent_pb2_grpc.AgentServiceStub
    engineer: agent_pb2_grpc.AgentServiceStub
    local: agent_pb2_grpc.AgentLocalServiceStub
    channels: dict[str, grpc.aio.Channel]


@pytest.fixture
async def clients(deployment: Deployment, agent: AgentHandle) -> AsyncIterator[Clients]:
    address = f"127.0.0.1:{agent.port}"
    server = Identity(TD, "agent", AGENT_ID)
    channels = {
        "controller": secure_channel(address, deployment.controller, server),
        "engineer": secure_channel(address, deployment.engineer, server),
        "local": grpc.aio.insecure_channel(f"unix:{agent.socket}"),
    }
    yield Clients(agent_pb2_grpc.AgentServiceStub(channels["controller"]),
                  agent_pb2_grpc.AgentServiceStub(channels["engineer"]),
                  agent_pb2_grpc.AgentLocalServiceStub(channels["local"]), channels)
    for channel in channels.values():
        await channel.close()
