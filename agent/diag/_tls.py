"""The TLS check of ``diag.connect``: the server's certificate and whether it verifies.

The first handshake verifies against the host's trust store and the name; if that
fails, a second one without verification fetches the certificate anyway, so that an
expired or self-signed certificate can still be described.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl
import time
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization


async def inspect(host: str, port: int, server_name: str, *,
                  now: Callable[[], float] = time.time) -> dict[str, Any]:
    """Handshake facts and the certificate's subject, issuer, names and expiry."""
    started = time.monotonic()
    verify_error = None
    try:
        der, protocol, cipher = await _handshake(host, port, server_name, verify=True)
    except ssl.SSLCertVerificationError as exc:
        verify_error = str(exc.verify_message or exc.reason)
        der, protocol, cipher = await _handshake(host, port, server_name, verify=False)
    latency = time.monotonic() - started
    return {"server_name": server_name, "handshake": True, "verified": verify_error is None,
            "verify_error": verify_error, "protocol": protocol, "cipher": cipher,
            "latency_seconds": round(latency, 6),
            **describe(x509.load_der_x509_certificate(der), now())}


async def _handshake(host: str, port: int, server_name: str,
                     *, verify: bool) -> tuple[bytes, str | None, str | None]:
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    _, writer = await asyncio.open_connection(host, port, ssl=context,
                                              server_hostname=server_name)
    try:
        tls: ssl.SSLObject = writer.get_extra_info("ssl_object")
        der = tls.getpeercert(binary_form=True)
        cipher = tls.cipher()
        if der is None:
            raise ssl.SSLError("the server sent no certificate")
        return der, tls.version(), cipher[0] if cipher else None
    finally:
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 1.0)


def describe(cert: x509.Certificate, now: float) -> dict[str, Any]:
    """The JSON-ready facts of a certificate; ``expires_in_seconds`` < 0 once expired."""
    not_after = cert.not_valid_after_utc.timestamp()
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = names.get_values_for_type(x509.DNSName)
        ips = [str(ip) for ip in names.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        dns, ips = [], []
    der = cert.public_bytes(serialization.Encoding.DER)
    return {"subject": cert.subject.rfc4514_string(), "issuer": cert.issuer.rfc4514_string(),
            "serial": format(cert.serial_number, "x"), "dns_names": dns, "ip_addresses": ips,
            "not_before_at": cert.not_valid_before_utc.timestamp(), "not_after_at": not_after,
            "expires_in_seconds": round(not_after - now), "expired": not_after < now,
            "sha256_fingerprint": hashlib.sha256(der).hexdigest()}
