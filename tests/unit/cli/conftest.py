"""Fixtures for rmctl without a server: homes with real certificates, and a fake channel
that answers RPCs in-process through the real generated stubs and serializers."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
import tomli_w
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf.message import Message
from typer.testing import CliRunner

import permissions
from controller.client.api import ControllerClient
from pki import certs
from pki.files import write_key, write_public
from pki.identity import Identity
from rmaint.envelopes import from_wire, to_wire
from rmaint.v1 import agent_pb2

TRUST_DOMAIN = "example.test"
# The enrolled key of the fake agent web-1: FakeAgent signs with it by default, and the
# fake OpenSession hands its public half to the client.
AGENT_KEY = certs.generate_key()
Handler = Callable[[Any], Message | Exception]


@dataclass
class Home:
    path: Path
    key: ec.EllipticCurvePrivateKey
    role: str
    name: str


def make_home(root: Path, *, role: str = "engineer", name: str = "alice",
              lifetime_hours: float = 12, now: float | None = None) -> Home:
    """A client home with a CA-issued certificate, as 'rmctl login' leaves it."""
    now = time.time() if now is None else now
    ca_key = certs.generate_key()
    ca = certs.create_ca(ca_key, TRUST_DOMAIN, now=now)
    key = certs.generate_key()
    cert = certs.issue(ca_key, ca, key.public_key(), Identity(TRUST_DOMAIN, role, name),
                       now=now, lifetime=dt.timedelta(hours=lifetime_hours))
    home = root / f"home-{name}"
    write_key(home / "identity.key", key)
    write_public(home / "identity.crt", certs.cert_pem(cert))
    write_public(home / "ca.crt", certs.cert_pem(ca))
    (home / "rmctl.toml").write_text(tomli_w.dumps({"client": {
        "role": role, "name": name, "controller": "127.0.0.1:7443",
        "trust_domain": TRUST_DOMAIN, "key": "identity.key", "cert": "identity.crt",
        "ca": "ca.crt",
    }}))
    return Home(home, key, role, name)


@pytest.fixture
def home_factory(tmp_path: Path) -> Callable[..., Home]:
    return lambda **kw: make_home(tmp_path, **kw)


def rpc_error(code: grpc.StatusCode, details: str = "") -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


@dataclass
class FakeChannel:
    """Answers unary calls with ``handlers[method name](request)``; records every call."""

    handlers: dict[str, Handler] = field(default_factory=dict)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    closed: bool = False

    def _answer(self, name: str, request: Any, request_serializer: Callable[[Any], bytes],
                timeout: float | None) -> Any:
        assert timeout is not None, "every call carries a deadline"
        request_serializer(request)
        self.calls.append((name, request))
        handler = self.handlers.get(name)
        if handler is None:
            raise rpc_error(grpc.StatusCode.UNIMPLEMENTED, f"no fake for {name}")
        answer = handler(request)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def unary_unary(self, method: str, request_serializer: Callable[[Any], bytes],
                    response_deserializer: Callable[[bytes], Any], **_: Any) -> Any:
        name = method.rsplit("/", 1)[1]

        async def call(request: Any, timeout: float | None = None) -> Any:
            answer = self._answer(name, request, request_serializer, timeout)
            return response_deserializer(answer.SerializeToString())
        return call

    def unary_stream(self, method: str, request_serializer: Callable[[Any], bytes],
                     response_deserializer: Callable[[bytes], Any], **_: Any) -> Any:
        """Streams what ``handlers[name](request)`` returns: a list of messages."""
        name = method.rsplit("/", 1)[1]

        async def call(request: Any, timeout: float | None = None) -> Any:
            for message in self._answer(name, request, request_serializer, timeout):
                yield response_deserializer(message.SerializeToString())
        return call

    async def close(self) -> None:
        self.closed = True

    def requests(self, name: str) -> list[Any]:
        return [request for method, request in self.calls if method == name]


@pytest.fixture
def channel(monkeypatch: pytest.MonkeyPatch) -> FakeChannel:
    """Every ControllerClient.open in the test talks to this fake."""
    fake = FakeChannel()

    def open_fake(cls: type[ControllerClient], config: Any, *, now: float | None = None
                  ) -> ControllerClient:
        return cls(fake, address=config.controller)

    monkeypatch.setattr(ControllerClient, "open", classmethod(open_fake))
    return fake


@dataclass
class FakeAgent:
    """Executes operations as the agent would answer them: result JSON and signed receipt."""

    result: Any
    key: ec.EllipticCurvePrivateKey = AGENT_KEY
    event_id: int = 41
    tamper: str = ""

    def __call__(self, request: agent_pb2.ExecuteRequest) -> agent_pb2.ExecuteResponse:
        envelope = from_wire(request.operation)
        op = permissions.Operation.from_payload(envelope.payload)
        result_json = json.dumps(self.result).encode()
        receipt = permissions.Receipt(
            agent_id=op.agent_id, session_id=op.session_id, seq=op.seq, operation=op.operation,
            operation_digest=permissions.digest(envelope), outcome="ok",
            result_digest="sha256:" + hashlib.sha256(result_json).hexdigest(),
            at=op.issued_at, log_index=7)
        if self.tamper == "result":
            result_json += b" "
        signed = permissions.sign(permissions.RECEIPT, receipt.to_payload(), self.key)
        return agent_pb2.ExecuteResponse(result_json=result_json, receipt=to_wire(signed),
                                         event_id=self.event_id)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()
