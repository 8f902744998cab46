"""The enrolling side of a join: pin the CA, send a CSR, receive a certificate.

Used by agents (``rmagent enroll``) and people (``rmctl login``); the private key is
made by the caller on its own host and never sent.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import grpc
from cryptography.hazmat.primitives.asymmetric import ec

from pki.certs import make_csr
from pki.identity import Identity
from pki.tls import channel_options
from pki.token import JoinToken, TokenError, fetch_pinned_ca
from rmaint.v1 import controller_pb2, controller_pb2_grpc


class EnrollmentRefused(Exception):
    """The controller refused the token (used, expired or unknown) or the CSR."""


@dataclass(frozen=True)
class Enrolled:
    identity: Identity
    certificate_pem: bytes
    ca_pem: bytes
    controller_address: str


async def enroll(token: JoinToken, key: ec.EllipticCurvePrivateKey, *,
                 agent_address: str = "", roles: tuple[str, ...] = (),
                 timeout: float = 10.0) -> Enrolled:
    """Exchange ``token`` for a certificate on ``key``; ``roles``: the ones this program
    can take (a token for another is refused by the controller, and stays unused)."""
    ca_pem = await asyncio.to_thread(fetch_pinned_ca, token.address, token.ca_pin)
    server = Identity(token.trust_domain, "controller")
    creds = grpc.ssl_channel_credentials(root_certificates=ca_pem)
    async with grpc.aio.secure_channel(token.address, creds,
                                       options=channel_options(server)) as channel:
        stub = controller_pb2_grpc.EnrollmentServiceStub(channel)
        # The CSR's name is a hint; the controller certifies what the token says.
        csr = make_csr(key, Identity(token.trust_domain, "agent", "enrolling"))
        request = controller_pb2.EnrollRequest(token_secret=token.secret, csr_pem=csr,
                                               agent_address=agent_address, roles=roles)
        try:
            reply = await stub.Enroll(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED,
                              grpc.StatusCode.INVALID_ARGUMENT,
                              grpc.StatusCode.FAILED_PRECONDITION):
                raise EnrollmentRefused(exc.details() or "enrollment refused") from exc
            raise TokenError(f"cannot enroll at {token.address}: {exc.details()}") from exc
    identity = Identity.parse(reply.identity)
    if identity.trust_domain != token.trust_domain or reply.ca_certificate_pem.strip() != ca_pem.strip():
        raise EnrollmentRefused("the controller answered for another deployment")
    return Enrolled(identity, reply.certificate_pem, ca_pem, reply.controller_address)
