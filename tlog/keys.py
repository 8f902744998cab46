"""Ed25519 keys for signed notes: who signs, and which keys a reader trusts.

A key is known by its name and its 4-byte key ID, ``SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4]``
(c2sp.org/signed-note, signature type 0x01). Keys are pinned as verifier key strings,
``<name>+<key ID hex>+base64(0x01 ‖ public key)``, the form Go's checksum database uses.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tlog._errors import MalformedKey
from tlog._text import b64decode_strict, is_key_name

ED25519 = 0x01
"""The signed-note signature type byte of Ed25519."""


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte key ID of an Ed25519 key: SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ED25519]) + public_key).digest()[:4]


@dataclass(frozen=True)
class NoteVerifier:
    """A trusted Ed25519 public key (32 raw bytes) under a key name."""

    name: str
    public_key: bytes
    key_id: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not is_key_name(self.name):
            raise MalformedKey(f"key name {self.name!r} is empty or has a space, a plus or a control")
        if type(self.public_key) is not bytes or len(self.public_key) != 32:
            raise MalformedKey("an Ed25519 public key is 32 bytes")
        object.__setattr__(self, "key_id", key_id(self.name, self.public_key))

    def verifies(self, text: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``text``."""
        try:
            ed25519.Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, text)
        except (InvalidSignature, ValueError):
            return False
        return True

    def vkey(self) -> str:
        """This key as a verifier key string, ``<name>+<key ID hex>+base64(0x01 ‖ public key)``."""
        material = base64.b64encode(bytes([ED25519]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{material}"


@dataclass(frozen=True)
class NoteSigner:
    """An Ed25519 private key that signs notes under a key name."""

    name: str
    private_key: ed25519.Ed25519PrivateKey = field(repr=False)
    verifier: NoteVerifier = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.private_key, ed25519.Ed25519PrivateKey):
            raise MalformedKey("a note signer's key is an Ed25519 private key")
        raw = self.private_key.public_key().public_bytes(serialization.Encoding.Raw,
                                                         serialization.PublicFormat.Raw)
        object.__setattr__(self, "verifier", NoteVerifier(self.name, raw))

    @property
    def key_id(self) -> bytes:
        return self.verifier.key_id

    def sign(self, text: bytes) -> bytes:
        """This key's Ed25519 signature of ``text``."""
        return self.private_key.sign(text)


def parse_verifier_key(vkey: str) -> NoteVerifier:
    """Parse a verifier key string; its key ID must be the one its name and key give."""
    parts = vkey.split("+", 2) if type(vkey) is str else []
    if len(parts) != 3 or len(parts[1]) != 8 or parts[1] != parts[1].lower():
        raise MalformedKey("a verifier key is <name>+<8 lowercase hex digits>+<base64 key>")
    material = b64decode_strict(parts[2])
    if material is None or len(material) != 33 or material[0] != ED25519:
        raise MalformedKey("verifier key material is not 0x01 and a 32-byte Ed25519 public key")
    verifier = NoteVerifier(parts[0], material[1:])
    if verifier.key_id.hex() != parts[1]:
        raise MalformedKey(f"key ID {parts[1]} does not match the key ({verifier.key_id.hex()})")
    return verifier
