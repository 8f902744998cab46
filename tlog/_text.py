"""Text checks shared by notes, keys and checkpoints."""

from __future__ import annotations

import base64
import binascii
import re

# ASCII controls other than newline, and lone surrogates (a str that is not encodable UTF-8).
_FORBIDDEN = re.compile("[\x00-\x09\x0b-\x1f\ud800-\udfff]")


def b64decode_strict(text: str) -> bytes | None:
    """Standard base64 (RFC 4648 §4) in its one canonical spelling, or None."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if text and base64.b64encode(raw).decode() == text else None


def has_forbidden(text: str) -> bool:
    """Whether ``text`` holds a control character other than newline, or is not valid Unicode."""
    return _FORBIDDEN.search(text) is not None


def is_key_name(name: object) -> bool:
    """A key name is non-empty, with no Unicode space, no plus sign and no control character."""
    return (type(name) is str and name != "" and "+" not in name and not has_forbidden(name)
            and not any(c.isspace() for c in name))
