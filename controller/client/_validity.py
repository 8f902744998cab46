"""A certificate's validity window, remembered next to the certificate.

Every command that reaches the controller checks the home's certificate for expiry and
renewal before it connects; loading ``cryptography.x509`` for that alone would add about
15 ms to each such rmctl process. So the window x509 reads is kept in ``<cert>.validity``
with the SHA-256 of the exact certificate bytes it was read from: it answers only while
the certificate is still those bytes, and is read again (and kept) whenever it is not.
Losing or damaging the file costs one x509 load, nothing else; the TLS handshake, not
this window, decides whether the certificate is accepted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from pathlib import Path

from pki.files import write_public

SUFFIX = ".validity"


def read_validity(path: Path) -> tuple[float, float]:
    """``notBefore`` and ``notAfter`` (unix seconds) of the PEM certificate at ``path``;
    OSError if it cannot be read, ValueError if it is not a certificate."""
    pem = path.read_bytes()
    digest = hashlib.sha256(pem).hexdigest()
    remembered = _remembered(_sidecar(path), digest)
    if remembered is not None:
        return remembered
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(pem)
    window = cert.not_valid_before_utc.timestamp(), cert.not_valid_after_utc.timestamp()
    _remember(_sidecar(path), digest, window)
    return window


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + SUFFIX)


def _remembered(sidecar: Path, digest: str) -> tuple[float, float] | None:
    try:
        kept = json.loads(sidecar.read_bytes())
        window = float(kept["not_before"]), float(kept["not_after"])
        if kept["sha256"] == digest and all(math.isfinite(t) for t in window):
            return window
    except (OSError, ValueError, TypeError, KeyError):
        pass  # missing, damaged or of another certificate: read the certificate itself
    return None


def _remember(sidecar: Path, digest: str, window: tuple[float, float]) -> None:
    """Best effort: a home the user cannot write to still works, one x509 load slower."""
    data = json.dumps({"sha256": digest, "not_before": window[0], "not_after": window[1]})
    with contextlib.suppress(OSError):
        write_public(sidecar, data.encode() + b"\n")
