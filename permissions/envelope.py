"""Signed envelopes: signatures over a type-tagged pre-authentication encoding.

The signature covers ``PAE(payload_type, payload)`` of the exact payload bytes, as DSSE
does, so a payload is verified before it is parsed and never re-serialized for checking.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from permissions._errors import BadSignature, MalformedStatement

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey

MAX_PAYLOAD = 256 * 1024


@dataclass(frozen=True)
class Signature:
    key_id: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...]


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def public_key_bytes(key: PublicKey) -> bytes:
    """Raw 32 bytes for Ed25519, SubjectPublicKeyInfo DER for ECDSA."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_id(key: PublicKey) -> str:
    """Stable identifier of a public key: ``sha256:<hex>`` of its bytes."""
    return "sha256:" + hashlib.sha256(public_key_bytes(key)).hexdigest()


def load_public_key(data: bytes) -> PublicKey:
    """Inverse of :func:`public_key_bytes`."""
    if len(data) == 32:
        return ed25519.Ed25519PublicKey.from_public_bytes(data)
    try:
        key = serialization.load_der_public_key(data)
    except ValueError as exc:
        raise MalformedStatement("not a public key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise MalformedStatement("unsupported public key type")
    return key


def sign(payload_type: str, payload: bytes, key: PrivateKey) -> Envelope:
    """Sign ``payload`` as ``payload_type`` with ``key``."""
    message = pae(payload_type, payload)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        sig = key.sign(message)
    else:
        sig = key.sign(message, ec.ECDSA(hashes.SHA256()))
    return Envelope(payload_type, payload, (Signature(key_id(key.public_key()), sig),))


def verify(envelope: Envelope, payload_type: str, keys: Mapping[str, PublicKey]) -> bytes:
    """Return the payload if one signature verifies with a key in ``keys``.

    ``keys`` maps key ids to public keys; signatures naming other ids are ignored.
    """
    return verify_signer(envelope, payload_type, keys)[0]


def verify_signer(
    envelope: Envelope, payload_type: str, keys: Mapping[str, PublicKey]
) -> tuple[bytes, str]:
    """Like :func:`verify`, also returning the id of the key whose signature verified."""
    if envelope.payload_type != payload_type:
        raise MalformedStatement(f"expected {payload_type}, got {envelope.payload_type!r}")
    if len(envelope.payload) > MAX_PAYLOAD:
        raise MalformedStatement("payload too large")
    message = pae(envelope.payload_type, envelope.payload)
    for signature in envelope.signatures:
        key = keys.get(signature.key_id)
        if key is not None and _valid(key, signature.sig, message):
            return envelope.payload, signature.key_id
    raise BadSignature("no valid signature by an acceptable key")


def _valid(key: PublicKey, sig: bytes, message: bytes) -> bool:
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(sig, message)
        else:
            key.verify(sig, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def digest(envelope: Envelope) -> str:
    """SHA-256 of the envelope's PAE, as ``sha256:<hex>``: names the exact signed statement."""
    return "sha256:" + hashlib.sha256(pae(envelope.payload_type, envelope.payload)).hexdigest()
