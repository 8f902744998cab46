"""Certificate renewal, as agents and engineers do it: same key, same identity, new dates.

:func:`renewal_delay` is the schedule (pure: half the certificate's life, plus a bounded
jitter so that a fleet enrolled together does not renew together); :func:`renew` asks the
controller's RenewalService over mutual TLS with the still-valid certificate and checks
the answer (:func:`check_renewed`) before anyone writes it: issued by the deployment CA,
for the same identity and the same key, currently valid.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec

from permissions import key_id
from pki.files import reason
from pki.identity import Identity, IdentityError
from pki.tls import TlsFiles, secure_channel
from rmaint.v1 import controller_pb2, controller_pb2_grpc

if TYPE_CHECKING:
    from cryptography import x509

RENEW_AT = 0.5  # of the certificate's life
JITTER = 0.05  # of the life, at most, added after half-life
RENEW_TIMEOUT = 15.0


class RenewalFailed(Exception):
    """The controller refused or could not be reached, or its answer is unusable."""


@dataclass(frozen=True)
class Validity:
    not_before: float
    not_after: float

    @classmethod
    def of(cls, cert: x509.Certificate) -> Validity:
        return cls(cert.not_valid_before_utc.timestamp(), cert.not_valid_after_utc.timestamp())

    @property
    def renew_at(self) -> float:
        """Half-life: when renewal is due (before jitter)."""
        return self.not_before + (self.not_after - self.not_before) * RENEW_AT

    def due(self, now: float) -> bool:
        return now >= self.renew_at


def renewal_delay(validity: Validity, now: float, rand: Callable[[], float]) -> float:
    """Seconds from ``now`` until renewal: half-life plus a jitter uniform in
    [0, JITTER * life); 0 when that time has passed. ``rand()`` is in [0, 1)."""
    life = max(0.0, validity.not_after - validity.not_before)
    at = validity.renew_at + rand() * JITTER * life
    return max(0.0, at - now)


def check_renewed(pem: bytes, ca_pem: bytes, identity: Identity,
                  key: ec.EllipticCurvePrivateKey, now: float) -> x509.Certificate:
    """The certificate in ``pem`` if it is what a renewal must give, else RenewalFailed."""
    # x509 loads on use: rmctl checks whether renewal is due before every command.
    from cryptography import x509

    from pki.certs import identity_of

    try:
        cert = x509.load_pem_x509_certificate(pem)
        ca = x509.load_pem_x509_certificate(ca_pem)
        cert.verify_directly_issued_by(ca)
        named = identity_of(cert)
    except (ValueError, TypeError, InvalidSignature, IdentityError) as exc:
        raise RenewalFailed(f"the controller sent an unusable certificate: {exc!r}") from exc
    public = cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or \
            key_id(public) != key_id(key.public_key()):
        raise RenewalFailed("the controller certified another key")
    if named != identity:
        raise RenewalFailed(f"the controller certified {named.uri}, not {identity.uri}")
    if not Validity.of(cert).not_before <= now < Validity.of(cert).not_after:
        raise RenewalFailed("the renewed certificate is not valid now")
    return cert


async def renew(controller: str, files: TlsFiles, identity: Identity,
                key: ec.EllipticCurvePrivateKey, *, now: float,
                timeout: float = RENEW_TIMEOUT) -> tuple[bytes, x509.Certificate]:
    """A renewed certificate (PEM and parsed) for ``key``, asked with the certificate in
    ``files``; RenewalFailed if refused, unreachable or unusable. Writes nothing."""
    from pki.certs import make_csr

    server = Identity(identity.trust_domain, "controller")
    request = controller_pb2.RenewCertificateRequest(csr_pem=make_csr(key, identity))
    try:
        channel = secure_channel(controller, files, server)
    except OSError as exc:
        raise RenewalFailed(f"cannot read the TLS files: {reason(exc)}") from exc
    async with channel:
        try:
            reply = await controller_pb2_grpc.RenewalServiceStub(channel).RenewCertificate(
                request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise RenewalFailed(f"controller {controller}: {exc.code().name.lower()}: "
                                f"{exc.details()}") from exc
    pem = bytes(reply.certificate_pem)
    return pem, check_renewed(pem, files.ca.read_bytes(), identity, key, now)


def expired(validity: Validity, now: float) -> bool:
    return now >= validity.not_after


def utc(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
