from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

import permissions as p


@dataclass
class World:
    """An approver, an engineer and a grant for agent web-1, case C-1, issued at t=1000."""

    approver: ed25519.Ed25519PrivateKey
    engineer: ec.EllipticCurvePrivateKey
    request: p.AccessRequest
    grant_envelope: p.Envelope
    trust: p.AgentTrust

    def op(self, seq: int = 1, *, operation: str = "diag.system", key: ec.EllipticCurvePrivateKey | None = None,
           **fields: object) -> p.Envelope:
        base: dict[str, object] = dict(session_id="S-1", seq=seq, grant_id="G-1", agent_id="web-1",
                                       case_id="C-1", operation=operation, params={}, issued_at=1100)
        base.update(fields)
        statement = p.Operation(**base)  # type: ignore[arg-type]
        return p.sign(p.OPERATION, statement.to_payload(), key or self.engineer)

    def decide(self, op: p.Envelope, *, now: float = 1100, last_seq: int | None = None,
               revoked: frozenset[str] = frozenset(), grant: p.Envelope | None = None) -> p.Decision:
        return p.evaluate(grant_envelope=grant or self.grant_envelope, operation_envelope=op,
                          trust=self.trust, scope_of=SCOPE_OF.get, last_seq=last_seq,
                          revoked=revoked, now=now)


SCOPE_OF = {"diag.system": "diag.read", "diag.disks": "diag.read", "data.apply": "data.write"}


def make_world(scopes: tuple[str, ...] = ("diag.read",), duration: int = 3600) -> World:
    approver = ed25519.Ed25519PrivateKey.generate()
    engineer = ec.generate_private_key(ec.SECP256R1())
    envelope = p.request_access(engineer, request_id="R-1", case_id="C-1", agent_id="web-1",
                                engineer="alice", scopes=scopes, duration_seconds=duration,
                                reason="disk full on web-1", now=900)
    request = p.verify_access_request(envelope)
    grant = p.approve(request, approver, grant_id="G-1", now=1000)
    trust = p.AgentTrust("web-1", {p.key_id(approver.public_key()): approver.public_key()})
    return World(approver, engineer, request, grant, trust)


@pytest.fixture
def world() -> World:
    return make_world()


@pytest.fixture
def world_factory() -> Callable[..., World]:
    return make_world
