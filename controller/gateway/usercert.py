"""OpenSSH user certificates (PROTOCOL.certkeys, ``*-cert-v01@openssh.com``): made and read.

The gateway's certificates carry a shell ticket in a custom extension, which OpenSSH
clients keep and send unread and which asyncssh drops when it decodes a certificate, so
this module writes and reads the format itself. It is pure: no clock, no files; the
nonce and serial are the only randomness, and the signing key is a parameter.

Only Ed25519 signs (the gateway's user CA); subjects may be ECDSA (engineer identity keys
are P-256), Ed25519 or RSA keys, whose public fields a certificate repeats.
"""

from __future__ import annotations

import base64
import secrets
import struct
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

CERT_SUFFIX = "-cert-v01@openssh.com"
USER = 1  # certificate type: user (2 is host)
ED25519 = "ssh-ed25519"
# Public-key fields (each an SSH string or mpint, both length-prefixed) after the nonce.
_FIELDS = {"ecdsa-sha2-nistp256": 2, "ecdsa-sha2-nistp384": 2, "ecdsa-sha2-nistp521": 2,
           ED25519: 1, "ssh-rsa": 2}
MAX_SIZE = 16384  # far above any certificate of these key types


class CertificateInvalid(ValueError):
    """The bytes are not an OpenSSH certificate this module can read."""


@dataclass(frozen=True)
class UserCertificate:
    """A decoded certificate; ``signed`` is the exact bytes its signature covers."""

    algorithm: str
    subject: bytes  # the subject's plain public key blob (string alg + its fields)
    serial: int
    cert_type: int
    key_id: str
    principals: tuple[str, ...]
    valid_after: int
    valid_before: int
    critical_options: dict[str, bytes] = field(default_factory=dict)
    extensions: dict[str, bytes] = field(default_factory=dict)
    signature_key: bytes = b""
    signed: bytes = b""
    signature: bytes = b""

    def extension_text(self, name: str) -> str | None:
        """The text value of extension ``name`` (an SSH string inside), None if absent."""
        data = self.extensions.get(name)
        if data is None:
            return None
        reader = _Reader(data)
        value = reader.string()
        reader.end()
        return value.decode("utf-8")

    def signed_by(self, ca: ed25519.Ed25519PublicKey) -> bool:
        """Whether ``ca`` is the signing key and its signature over the body verifies."""
        if self.signature_key != ssh_public_blob(ca):
            return False
        reader = _Reader(self.signature)
        try:
            algorithm, raw = reader.string(), reader.string()
            reader.end()
            if algorithm != ED25519.encode():
                return False
            ca.verify(raw, self.signed)
        except (CertificateInvalid, InvalidSignature):
            return False
        return True


def ssh_public_blob(key: object) -> bytes:
    """The SSH wire blob (``string alg`` + fields) of a cryptography public key."""
    line = key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)  # type: ignore[attr-defined]
    return base64.b64decode(line.split()[1])


def issue(ca: ed25519.Ed25519PrivateKey, subject: bytes, *, key_id: str,
          principals: tuple[str, ...], valid_after: int, valid_before: int,
          extensions: dict[str, bytes], serial: int | None = None) -> bytes:
    """A user certificate for the subject key blob ``subject``, signed by ``ca``: its wire
    bytes. Extensions are written in name order, as OpenSSH writes them."""
    reader = _Reader(subject)
    plain = reader.string().decode("ascii", "replace")
    count = _FIELDS.get(plain)
    if count is None:
        raise CertificateInvalid(f"unsupported subject key type {plain!r}")
    for _ in range(count):
        reader.string()
    reader.end()
    if not 0 <= valid_after < valid_before:
        raise ValueError(f"empty validity window {valid_after}..{valid_before}")
    body = b"".join((
        _string((plain + CERT_SUFFIX).encode()), _string(secrets.token_bytes(32)),
        subject[4 + len(plain):],  # the subject's fields, after its algorithm name
        struct.pack(">QI", secrets.randbits(63) if serial is None else serial, USER),
        _string(key_id.encode()), _string(b"".join(_string(p.encode()) for p in principals)),
        struct.pack(">QQ", valid_after, valid_before), _string(b""),
        _string(b"".join(_string(name.encode()) + _string(extensions[name])
                         for name in sorted(extensions))),
        _string(b""), _string(ssh_public_blob(ca.public_key()))))
    return body + _string(_string(ED25519.encode()) + _string(ca.sign(body)))


def text_extension(value: str) -> bytes:
    """An extension's data holding ``value`` (an SSH string, as OpenSSH encodes values)."""
    return _string(value.encode("utf-8"))


def openssh_line(blob: bytes, comment: str) -> str:
    """The certificate as an OpenSSH ``*-cert.pub`` line."""
    algorithm = _Reader(blob).string().decode("ascii")
    return f"{algorithm} {base64.b64encode(blob).decode()} {comment}".rstrip()


def parse_line(line: str) -> UserCertificate:
    """A certificate from its OpenSSH line (``alg base64 [comment]``)."""
    parts = line.split()
    if len(parts) < 2:
        raise CertificateInvalid("not an OpenSSH certificate line")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except ValueError as exc:
        raise CertificateInvalid(f"bad base64: {exc}") from exc
    return parse(blob)


def is_certificate(blob: bytes) -> bool:
    """Whether ``blob`` names an OpenSSH certificate algorithm (checked no further)."""
    try:
        return _Reader(blob).string().endswith(CERT_SUFFIX.encode())
    except CertificateInvalid:
        return False


def parse(blob: bytes) -> UserCertificate:
    """Decode a certificate; CertificateInvalid if malformed. Trust is decided elsewhere
    (:meth:`UserCertificate.signed_by` and the checks of its caller)."""
    if len(blob) > MAX_SIZE:
        raise CertificateInvalid(f"{len(blob)} bytes is too large")
    reader = _Reader(blob)
    algorithm = reader.string().decode("ascii", "replace")
    if not algorithm.endswith(CERT_SUFFIX):
        raise CertificateInvalid(f"{algorithm!r} is not a certificate algorithm")
    plain = algorithm[:-len(CERT_SUFFIX)]
    count = _FIELDS.get(plain)
    if count is None:
        raise CertificateInvalid(f"unsupported certificate type {algorithm!r}")
    reader.string()  # nonce
    start = reader.at
    for _ in range(count):
        reader.string()
    subject = _string(plain.encode()) + blob[start:reader.at]
    serial, cert_type = reader.unpack(">QI")
    key_id = _text(reader.string(), "key id")
    principals = _strings(reader.string())
    valid_after, valid_before = reader.unpack(">QQ")
    options, extensions = _pairs(reader.string()), _pairs(reader.string())
    reader.string()  # reserved
    signature_key = reader.string()
    signed = blob[:reader.at]
    signature = reader.string()
    reader.end()
    return UserCertificate(algorithm, subject, serial, cert_type, key_id,
                           tuple(_text(p, "principal") for p in principals), valid_after,
                           valid_before, options, extensions, signature_key, signed, signature)


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _text(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CertificateInvalid(f"{what} is not UTF-8") from exc


def _strings(data: bytes) -> list[bytes]:
    reader = _Reader(data)
    found = []
    while not reader.done():
        found.append(reader.string())
    return found


def _pairs(data: bytes) -> dict[str, bytes]:
    reader = _Reader(data)
    found: dict[str, bytes] = {}
    while not reader.done():
        name = _text(reader.string(), "option name")
        if name in found:
            raise CertificateInvalid(f"option {name!r} appears twice")
        found[name] = reader.string()
    return found


class _Reader:
    """Reads SSH wire fields; CertificateInvalid on anything short or left over."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.at = 0

    def string(self) -> bytes:
        (size,) = self.unpack(">I")
        if size > len(self._data) - self.at:
            raise CertificateInvalid("truncated field")
        self.at += size
        return self._data[self.at - size:self.at]

    def unpack(self, layout: str) -> tuple[int, ...]:
        size = struct.calcsize(layout)
        if size > len(self._data) - self.at:
            raise CertificateInvalid("truncated field")
        self.at += size
        return struct.unpack_from(layout, self._data, self.at - size)

    def done(self) -> bool:
        return self.at == len(self._data)

    def end(self) -> None:
        if not self.done():
            raise CertificateInvalid(f"{len(self._data) - self.at} bytes left over")
