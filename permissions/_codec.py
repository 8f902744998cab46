"""Canonical JSON for statements, and strict reading of untrusted JSON."""

from __future__ import annotations

import json
import re
from typing import Any

from permissions._errors import MalformedStatement

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
MAX_TEXT = 2000
# What no text meant for people may hold: C0 and C1 controls (terminal escapes, line
# breaks that fake a line of their own), Unicode's line and paragraph separators, and the
# bidirectional and zero-width controls that make text read other than it is stored.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e"
                      "\u2060-\u2069\ufeff]")


def canonical(obj: dict[str, Any]) -> bytes:
    """Sorted keys, no insignificant white space, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def is_id(value: str) -> bool:
    return _ID.fullmatch(value) is not None


def is_plain_text(value: str) -> bool:
    """True if ``value`` holds no control character (see above), tab and newline included."""
    return _CONTROL.search(value) is None


def check_plain(what: str, value: str) -> str:
    """``value`` if it is plain text (see above); MalformedStatement otherwise.

    Checked where text is signed or first taken in, not when a stored statement is read
    back: one signed before the rule must stay readable (and is shown escaped)."""
    if not is_plain_text(value):
        raise MalformedStatement(f"{what} holds a control character (a line break, a "
                                 "terminal escape or a bidirectional control)")
    return value


class Reader:
    """Reads fields of one JSON object, raising MalformedStatement on any deviation."""

    def __init__(self, payload: bytes, what: str) -> None:
        self.what = what
        try:
            obj = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedStatement(f"{what}: not JSON") from exc
        except RecursionError as exc:  # a signer can nest arrays deeper than Python recurses
            raise MalformedStatement(f"{what}: nested too deeply") from exc
        if not isinstance(obj, dict):
            raise MalformedStatement(f"{what}: not an object")
        self.obj: dict[str, Any] = obj

    def _get(self, name: str, kind: type | tuple[type, ...]) -> Any:
        if name not in self.obj:
            raise MalformedStatement(f"{self.what}: missing {name}")
        value = self.obj[name]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise MalformedStatement(f"{self.what}: {name} has the wrong type")
        return value

    def id(self, name: str) -> str:
        value: str = self._get(name, str)
        if not is_id(value):
            raise MalformedStatement(f"{self.what}: {name} is not a valid id")
        return value

    def text(self, name: str, limit: int = MAX_TEXT) -> str:
        value: str = self._get(name, str)
        if len(value) > limit:
            raise MalformedStatement(f"{self.what}: {name} is too long")
        return value

    def int(self, name: str, minimum: int = 0) -> int:
        value: int = self._get(name, int)
        if value < minimum or value > 2**62:
            raise MalformedStatement(f"{self.what}: {name} is out of range")
        return value

    def texts(self, name: str) -> tuple[str, ...]:
        values = self._get(name, list)
        if not all(isinstance(v, str) for v in values) or len(values) > 64:
            raise MalformedStatement(f"{self.what}: {name} must be a list of strings")
        return tuple(values)

    def object(self, name: str) -> dict[str, Any]:
        value: dict[str, Any] = self._get(name, dict)
        return value
