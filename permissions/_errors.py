"""Exceptions of the trust kernel.

    PermissionsError
    ├── MalformedStatement    bytes that are not a well-formed statement of the expected type
    └── BadSignature          no valid signature by an acceptable key
"""

from __future__ import annotations


class PermissionsError(Exception):
    """Base of every error raised by ``permissions``."""


class MalformedStatement(PermissionsError):
    """A payload or envelope does not parse as the statement it claims to be."""


class BadSignature(PermissionsError):
    """No signature on the envelope verifies with an acceptable key."""
