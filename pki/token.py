"""One-time join tokens and fetching the CA they pin.

A token carries the enrollment address, the SHA-256 pin of the CA certificate, the
expected trust domain and a random secret. The enrolling host fetches the certificate
chain from the enrollment port without trusting it, keeps the certificate matching the
pin, and from then on verifies the controller with it.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pki.certs import ca_pin

PREFIX = "rmj1."


class TokenError(ValueError):
    """A token that cannot be read, or a CA that does not match its pin."""


@dataclass(frozen=True)
class JoinToken:
    address: str
    ca_pin: str
    trust_domain: str
    secret: str

    def encode(self) -> str:
        body = json.dumps({"a": self.address, "p": self.ca_pin, "d": self.trust_domain,
                           "s": self.secret}, separators=(",", ":")).encode()
        return PREFIX + base64.urlsafe_b64encode(body).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> JoinToken:
        text = text.strip()
        if not text.startswith(PREFIX) or len(text) > 1024:
            raise TokenError("not an rmaint join token")
        body = text[len(PREFIX):]
        try:
            obj = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            return cls(str(obj["a"]), str(obj["p"]), str(obj["d"]), str(obj["s"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise TokenError("join token is damaged") from exc


def fetch_pinned_ca(address: str, pin: str, *, timeout: float = 5.0) -> bytes:
    """The PEM CA certificate that the server at ``address`` presents and ``pin`` names."""
    host, _, port = address.rpartition(":")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # nothing is trusted until the pin matches
    context.set_alpn_protocols(["h2"])
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as raw, \
                context.wrap_socket(raw) as tls:
            chain = _unverified_chain(tls)
    except (OSError, ValueError) as exc:
        raise TokenError(f"cannot reach the enrollment address {address}: {exc}") from exc
    for der in chain:
        cert = x509.load_der_x509_certificate(der)
        if ca_pin(cert) == pin:
            return cert.public_bytes(serialization.Encoding.PEM)
    raise TokenError("the controller's CA does not match the token's pin")


def _unverified_chain(tls: ssl.SSLSocket) -> list[bytes]:
    getter = getattr(tls, "get_unverified_chain", None)  # public from Python 3.13
    if getter is not None:
        return list(getter())
    sslobj = tls._sslobj  # type: ignore[attr-defined]  # same call before 3.13
    return [c.public_bytes(ssl._ssl.ENCODING_DER) for c in sslobj.get_unverified_chain()]  # type: ignore[attr-defined]
