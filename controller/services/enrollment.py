"""EnrollmentService: a one-time join token and a CSR in, a certificate out.

Served only on the enrollment port (server-only TLS). The token is marked used in the
same transaction that records the enrolled agent or person, so a token works once even
when two hosts race with it; a refused token looks the same whatever the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.engine import Connection

from controller.errors import EnrollmentRefused, FailedPrecondition, InvalidArgument
from controller.logs import log_event
from controller.services import _common
from controller.services._common import Deps
from controller.store import directory, tokens
from controller.store.records import AgentRecord, Principal
from permissions import key_id, public_key_bytes
from pki.certs import CertificateError, csr_public_key
from pki.identity import Identity
from rmaint.v1 import controller_pb2 as pb
from rmaint.v1 import controller_pb2_grpc

MAX_SECRET = 256
MAX_CSR = 16 * 1024


@dataclass(frozen=True)
class _Enrolled:
    identity: Identity
    certificate_pem: bytes


class EnrollmentService(controller_pb2_grpc.EnrollmentServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def Enroll(self, request: pb.EnrollRequest,
                     context: grpc.aio.ServicerContext) -> pb.EnrollResponse:
        secret = request.token_secret.strip()
        if not secret or len(secret) > MAX_SECRET:
            raise EnrollmentRefused("empty or oversized token secret")
        public_key = _csr_key(bytes(request.csr_pem))
        agent_address = _common.address(request.agent_address, "agent_address") \
            if request.agent_address else ""
        roles = tuple(_common.text(r, "roles", limit=32) for r in request.roles[:8])
        enrolled = await self._deps.store.write(
            self._enroll, secret, public_key, agent_address, roles, self._deps.clock())
        log_event("enrolled", identity=enrolled.identity.uri, key_id=key_id(public_key),
                  address=agent_address)
        return pb.EnrollResponse(
            certificate_pem=enrolled.certificate_pem,
            ca_certificate_pem=self._deps.authority.cert_pem,
            identity=enrolled.identity.uri, trust_domain=self._deps.trust_domain,
            controller_address=self._deps.controller_address,
        )

    def _enroll(self, conn: Connection, secret: str, public_key: ec.EllipticCurvePublicKey,
                agent_address: str, roles: tuple[str, ...], now: float) -> _Enrolled:
        token = tokens.consume_token(conn, secret, now)
        if roles and token.role not in roles:
            # Raised inside the transaction: the token is not spent. Its holder may learn
            # what it is for; the secret they sent proves they hold it.
            use = "rmagent enroll --token" if token.role == "agent" else "rmctl login --token"
            raise FailedPrecondition(f"this join token is for an {token.role}, not for this "
                                     f"program: use it with '{use}'")
        identity = Identity(self._deps.trust_domain, token.role, token.subject)
        fingerprint = key_id(public_key)
        if token.role == "agent":
            # No address: a dial-out agent, reached only over the stream it opens.
            assert token.customer_id is not None, "agent tokens name a customer"
            directory.save_agent(conn, AgentRecord(
                agent_id=token.subject, customer_id=token.customer_id, address=agent_address,
                public_key=public_key_bytes(public_key), key_fingerprint=fingerprint,
                enrolled_at=now, last_seen=None,
            ))
        else:
            directory.save_principal(conn, Principal(token.role, token.subject, fingerprint, now))
        return _Enrolled(identity, self._deps.authority.certify(public_key, identity, now=now))


def _csr_key(csr_pem: bytes) -> ec.EllipticCurvePublicKey:
    if not csr_pem or len(csr_pem) > MAX_CSR:
        raise InvalidArgument("csr_pem must hold one PEM certificate signing request")
    try:
        return csr_public_key(csr_pem)
    except CertificateError as exc:
        raise InvalidArgument(f"csr_pem: {exc}") from exc
