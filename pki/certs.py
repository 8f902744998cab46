"""Keys, the deployment CA, CSRs and certificates (ECDSA P-256)."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pki.identity import Identity, IdentityError

ENGINEER_CERT_LIFETIME = dt.timedelta(hours=12)
AGENT_CERT_LIFETIME = dt.timedelta(days=30)
SERVICE_CERT_LIFETIME = dt.timedelta(days=365)
CA_LIFETIME = dt.timedelta(days=3650)
_BACKDATE = dt.timedelta(minutes=5)


class CertificateError(ValueError):
    """A CSR or certificate that cannot be accepted."""


def generate_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _utc(now: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(now, dt.UTC)


def create_ca(key: ec.EllipticCurvePrivateKey, trust_domain: str, *, now: float) -> x509.Certificate:
    """A self-signed CA certificate for the deployment."""
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "rmaint"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"rmaint CA {trust_domain}"),
    ])
    start = _utc(now) - _BACKDATE
    return (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(start + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def make_csr(key: ec.EllipticCurvePrivateKey, identity: Identity) -> bytes:
    """A PEM CSR naming ``identity``; the controller decides what it finally certifies."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity.name or identity.role)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def csr_public_key(csr_pem: bytes) -> ec.EllipticCurvePublicKey:
    """The CSR's P-256 public key, once its self-signature checks out."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise CertificateError("not a PEM certificate signing request") from exc
    if not csr.is_signature_valid:
        raise CertificateError("CSR signature is invalid")
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise CertificateError("CSR key must be ECDSA P-256")
    return key


def issue(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate,
    public_key: ec.EllipticCurvePublicKey, identity: Identity, *, now: float,
    lifetime: dt.timedelta, ip_addresses: tuple[str, ...] = (),
    dns_names: tuple[str, ...] = (),
) -> x509.Certificate:
    """A leaf certificate for ``identity``, usable as TLS server and client."""
    sans: list[x509.GeneralName] = [
        x509.UniformResourceIdentifier(identity.uri), x509.DNSName(identity.dns_name),
    ]
    sans += [x509.DNSName(d) for d in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    start = _utc(now) - _BACKDATE
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity.uri)]))
        .issuer_name(ca_cert.subject).public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(_utc(now) + lifetime)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def identity_of(cert: x509.Certificate) -> Identity:
    """The one SPIFFE identity a certificate carries."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as exc:
        raise IdentityError("certificate has no SAN") from exc
    uris = [u for u in sans.get_values_for_type(x509.UniformResourceIdentifier)
            if u.startswith("spiffe://")]
    if len(uris) != 1:
        raise IdentityError("certificate must carry exactly one SPIFFE URI")
    return Identity.parse(uris[0])


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def ca_pin(ca_cert: x509.Certificate) -> str:
    """``sha256:<hex>`` of the CA certificate's DER: what join tokens pin."""
    return "sha256:" + hashlib.sha256(ca_cert.public_bytes(serialization.Encoding.DER)).hexdigest()
