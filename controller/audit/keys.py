"""The controller's log key: Ed25519, in the controller's home, 0600, never logged.

The log's origin (its name in every checkpoint) and the key's name are both
``<trust domain>/controller-log``. The public half is also written as a verifier key
string (``log.vkey``) that auditors pin.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519

import tlog
from pki.files import read_ed25519_key, write_key, write_public

KEY_FILE = "log.key"
VKEY_FILE = "log.vkey"


def origin(trust_domain: str) -> str:
    """The origin line of the controller's log, also its key's name."""
    return f"{trust_domain}/controller-log"


def create_log_key(home: Path, trust_domain: str) -> tlog.NoteSigner:
    """Make a new log key in ``home`` (private 0600, public ``log.vkey``)."""
    signer = tlog.NoteSigner(origin(trust_domain), ed25519.Ed25519PrivateKey.generate())
    write_key(home / KEY_FILE, signer.private_key)
    write_public(home / VKEY_FILE, (signer.verifier.vkey() + "\n").encode())
    return signer


def load_log_key(home: Path, trust_domain: str) -> tlog.NoteSigner | None:
    """The log key of ``home``, or None if it has none yet."""
    path = home / KEY_FILE
    if not path.exists():
        return None
    return tlog.NoteSigner(origin(trust_domain), read_ed25519_key(path))


def read_vkey(text: str) -> tlog.NoteVerifier:
    """A pinned verifier key string (``log.vkey`` content); MalformedKey if it is not one."""
    return tlog.parse_verifier_key(text.strip())
