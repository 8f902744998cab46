"""The controller's own certificates issued again: the server's and the administrator's.

``rmctl init`` issues both for a year and nothing renews them on their own: the controller
is its own CA, so only its home can. Agents, engineers and auditors pin the deployment CA,
not these certificates, so new ones for the same keys, identities and names are accepted
exactly as the old ones were. The running server keeps presenting the certificate it
started with until ``rmctl serve`` is restarted.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec

from controller.config import HomeFiles
from controller.errors import ConfigError
from pki.certs import SERVICE_CERT_LIFETIME, cert_pem, identity_of, issue
from pki.files import read_cert, read_ec_key, reason, write_public
from pki.identity import Identity, IdentityError

# Less than this left on the CA and a certificate cannot be given a useful life.
MIN_LIFETIME = dt.timedelta(days=1)
# The controller says at every start when its own certificates end sooner than this.
WARN_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True)
class Reissued:
    """The new certificates' end (Unix seconds), and the CA's, which bounds them."""

    controller_until: float
    admin_until: float
    ca_until: float


def reissue(home: Path, *, now: float) -> Reissued:
    """Issue the controller's and the administrator's certificates again, for the same keys,
    identities and names, for a year or until the CA ends if that is sooner. ConfigError if
    the home is not a controller home or its files do not belong together."""
    files = HomeFiles.of(home)
    try:
        ca_key, ca_cert = read_ec_key(files.ca_key), read_cert(files.ca_cert)
        server_key, server_cert = read_ec_key(files.key), read_cert(files.cert)
        admin_key, admin_cert = read_ec_key(files.admin_key), read_cert(files.admin_cert)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{home} is not a controller home with its CA key (made by "
                          f"'rmctl init'): {reason(exc)}") from exc
    if ca_key.public_key() != ca_cert.public_key():
        raise ConfigError("ca.key is not the key of ca.crt: certificates it signed would "
                          "not chain to the CA everyone pinned")
    ca_until = ca_cert.not_valid_after_utc
    lifetime = min(SERVICE_CERT_LIFETIME, ca_until - dt.datetime.fromtimestamp(now, dt.UTC))
    if lifetime < MIN_LIFETIME:
        raise ConfigError(f"the deployment CA ends at {ca_until.isoformat()}: it cannot "
                          "issue certificates any more")
    server = _renewed(ca_key, ca_cert, server_key, server_cert, "controller", now, lifetime)
    admin = _renewed(ca_key, ca_cert, admin_key, admin_cert, "admin", now, lifetime)
    # Both are checked before either is written; a failure between the two writes leaves
    # a new controller certificate beside the old administrator's, both valid.
    # Leaf then CA, as 'rmctl init' writes it: enrolling hosts fetch the chain.
    write_public(files.cert, cert_pem(server) + cert_pem(ca_cert))
    write_public(files.admin_cert, cert_pem(admin))
    return Reissued(server.not_valid_after_utc.timestamp(), admin.not_valid_after_utc.timestamp(),
                    ca_until.timestamp())


def _renewed(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate,
             key: ec.EllipticCurvePrivateKey, old: x509.Certificate, role: str, now: float,
             lifetime: dt.timedelta) -> x509.Certificate:
    """``old`` issued again: same key, identity and extra names. ConfigError if it is not
    this home's ``role`` certificate for ``key``."""
    try:
        identity = identity_of(old)
    except IdentityError as exc:
        raise ConfigError(f"the {role} certificate carries no usable identity: {exc}") from exc
    if identity.role != role or old.public_key() != key.public_key():
        raise ConfigError(f"the {role} certificate does not belong to this home's {role} key")
    _issued_by(old, ca_cert, f"the {role} certificate")
    dns, ips = _extra_names(old, identity)
    new = issue(ca_key, ca_cert, key.public_key(), identity, now=now, lifetime=lifetime,
                dns_names=dns, ip_addresses=ips)
    _issued_by(new, ca_cert, f"the new {role} certificate")
    return new


def _issued_by(cert: x509.Certificate, ca_cert: x509.Certificate, what: str) -> None:
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise ConfigError(f"{what} is not signed by this home's CA (ca.crt)") from exc


def _extra_names(cert: x509.Certificate,
                 identity: Identity) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The DNS names and IP addresses ``cert`` carries besides those of its identity."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return (), ()
    dns = tuple(n for n in sans.get_values_for_type(x509.DNSName) if n != identity.dns_name)
    ips = tuple(str(ip) for ip in sans.get_values_for_type(x509.IPAddress))
    return dns, ips


def ending_soon(home: Path, *, now: float,
                within: dt.timedelta = WARN_BEFORE) -> list[tuple[str, float]]:
    """The controller's own certificates (``controller``, ``admin``) that end within
    ``within`` of ``now``, with their end; unreadable ones are left to whoever reads them."""
    files = HomeFiles.of(home)
    ending = []
    for role, path in (("controller", files.cert), ("admin", files.admin_cert)):
        try:
            until = read_cert(path).not_valid_after_utc.timestamp()
        except (OSError, ValueError):
            continue
        if until - now < within.total_seconds():
            ending.append((role, until))
    return ending
