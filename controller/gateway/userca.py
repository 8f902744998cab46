"""The gateway's user CA: OpenSSH certificates that carry a shell ticket.

``rmctl ssh-cert`` (and ``rmctl ssh``) run ``shell.open`` as ever and then ask the
controller for a certificate on the engineer's own key: principal the agent id, valid at
most for the ticket's remaining life (≤ 60 s), the ticket in the extension
:data:`TICKET_EXTENSION`. A stock client then logs in as ``<agent>@gateway``.

The CA adds no power to the controller: the certificate only carries the ticket to the
gateway, and the agent still redeems it for the SSH client's key, which must be the key
the customer's grant names. A certificate for any other key gets nothing from the agent.

The key is Ed25519, made once under the controller home (mode 0600) like the host key.
:func:`check` is the gateway's side, pure: time is a parameter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_ssh_private_key,
)

from controller.gateway.usercert import (
    USER,
    CertificateInvalid,
    UserCertificate,
    issue,
    openssh_line,
    ssh_public_blob,
    text_extension,
)
from pki.files import write_private

USER_CA_NAME = "gateway_user_ca"
TICKET_EXTENSION = "rmaint-ticket@rmaint"
MAX_VALIDITY = 60  # seconds: no ticket lives longer
TICKET = re.compile(r"^[0-9a-f]{32}$")


class CertificateRefused(Exception):
    """Why a certificate does not log in (for the log only)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Issued:
    line: str  # the OpenSSH ``*-cert.pub`` line
    principal: str
    valid_after: int
    valid_before: int


class UserCA:
    """The CA key of one controller home."""

    def __init__(self, key: ed25519.Ed25519PrivateKey) -> None:
        self._key = key
        self.public = key.public_key()

    @classmethod
    def load_or_create(cls, home: Path) -> UserCA:
        """The user CA of ``home``, made now if there is none."""
        path = home / USER_CA_NAME
        if not path.exists():
            key = ed25519.Ed25519PrivateKey.generate()
            write_private(path, key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH,
                                                  NoEncryption()))
            return cls(key)
        loaded = load_ssh_private_key(path.read_bytes(), None)
        if not isinstance(loaded, ed25519.Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 key")
        return cls(loaded)

    def issue(self, subject: object, *, agent_id: str, ticket: str, key_id: str,
              now: float, valid_before: float) -> Issued:
        """A certificate for the public key ``subject`` (a cryptography key) to log in to
        ``agent_id`` with ``ticket`` until ``valid_before`` (capped at now + 60 s)."""
        start = int(now)
        end = int(min(valid_before, now + MAX_VALIDITY))
        if end <= start:
            raise ValueError("the validity window is empty")
        blob = issue(self._key, ssh_public_blob(subject), key_id=key_id,
                     principals=(agent_id,), valid_after=start, valid_before=end,
                     extensions={"permit-pty": b"", TICKET_EXTENSION: text_extension(ticket)})
        return Issued(openssh_line(blob, key_id), agent_id, start, end)


def check(ca: ed25519.Ed25519PublicKey, cert: UserCertificate, username: str,
          now: float) -> str:
    """The ticket ``cert`` carries if it logs ``username`` in at ``now``; else
    CertificateRefused with the reason."""
    if cert.signature_key != ssh_public_blob(ca):
        raise CertificateRefused("cert-ca-unknown", f"signed by another key ({cert.key_id})")
    if not cert.signed_by(ca):
        raise CertificateRefused("cert-signature-invalid", cert.key_id)
    if cert.cert_type != USER:
        raise CertificateRefused("cert-not-user", f"type {cert.cert_type}")
    if cert.critical_options:
        raise CertificateRefused("cert-critical-option", ",".join(sorted(cert.critical_options)))
    if now < cert.valid_after:
        raise CertificateRefused("cert-not-yet-valid", f"valid from {cert.valid_after}")
    if now >= cert.valid_before:
        raise CertificateRefused("cert-expired",
                                 f"expired {now - cert.valid_before:.1f}s ago ({cert.key_id})")
    if username not in cert.principals:
        raise CertificateRefused("cert-principal-mismatch",
                                 f"for {','.join(cert.principals)}, not {username}")
    try:
        ticket = cert.extension_text(TICKET_EXTENSION)
    except (CertificateInvalid, UnicodeDecodeError) as exc:
        raise CertificateRefused("cert-no-ticket", f"unreadable extension: {exc}") from exc
    if ticket is None or not TICKET.match(ticket):
        raise CertificateRefused("cert-no-ticket", f"no {TICKET_EXTENSION} ticket")
    return ticket


class IssuingCA:
    """The user CA of the gateway this controller runs: set while it runs, None otherwise.
    The engineer service issues shell certificates with it, and none while it is None."""

    def __init__(self) -> None:
        self.ca: UserCA | None = None
