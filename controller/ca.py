"""The deployment CA as the controller uses it: certificates for enrolling hosts and people."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from pki.certs import AGENT_CERT_LIFETIME, ENGINEER_CERT_LIFETIME, ca_pin, cert_pem, issue
from pki.files import read_cert, read_ec_key
from pki.identity import Identity

# Auditors, like engineers, hold short-lived certificates on a long-lived key.
LIFETIMES: dict[str, dt.timedelta] = {
    "agent": AGENT_CERT_LIFETIME,
    "engineer": ENGINEER_CERT_LIFETIME,
    "auditor": ENGINEER_CERT_LIFETIME,
}


@dataclass(frozen=True)
class Authority:
    """The CA key and certificate; issues leaf certificates for enrolled identities."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def load(cls, key_path: Path, cert_path: Path) -> Authority:
        return cls(read_ec_key(key_path), read_cert(cert_path))

    @property
    def cert_pem(self) -> bytes:
        return cert_pem(self.cert)

    @property
    def pin(self) -> str:
        return ca_pin(self.cert)

    def certify(self, public_key: ec.EllipticCurvePublicKey, identity: Identity, *,
                now: float) -> bytes:
        """A PEM certificate for ``identity`` on ``public_key``, with its role's lifetime."""
        lifetime = LIFETIMES[identity.role]
        return cert_pem(issue(self.key, self.cert, public_key, identity, now=now,
                              lifetime=lifetime))
