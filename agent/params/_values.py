"""The scalar values a parameter may take, and the rule that a change keeps a key's type."""

from __future__ import annotations

import math
from typing import Any

from agent.params.errors import ChangeRejected

Scalar = str | int | float | bool
Values = dict[str, Scalar]
MAX_TEXT = 4096
# Control characters would let a value break out of its line in INI and key=value files.
_CONTROL = frozenset(chr(c) for c in range(32)) - {"\t"} | {"\x7f"}


def kind(value: Any) -> str | None:
    """``bool``, ``int``, ``float`` or ``str`` for a scalar (subclasses included); else None."""
    for name, cls in (("bool", bool), ("int", int), ("float", float), ("str", str)):
        if isinstance(value, cls):
            return name
    return None


def plain(value: Any) -> Scalar:
    """``value`` as a plain Python scalar (library wrappers unwrapped)."""
    names = {"bool": bool, "int": int, "float": float, "str": str}
    name = kind(value)
    if name is None:
        raise ChangeRejected("not a scalar value")
    result: Scalar = names[name](value)
    return result


def checked(key: str, old: Any, new: Any) -> Scalar:
    """``new`` if it may replace ``old`` at ``key``: same kind (an integer for a float is
    made a float); finite numbers; text without NUL and at most 4096 characters."""
    old_kind, new_kind = kind(old), kind(new)
    if old_kind is None:
        raise ChangeRejected(f"{key}: the current value is not a single value (string, number "
                             "or boolean) and cannot be changed")
    if new_kind is None:
        raise ChangeRejected(f"{key}: the new value must be a string, number or boolean")
    if old_kind == "float" and new_kind == "int":
        new, new_kind = float(new), "float"
    if new_kind != old_kind:
        raise ChangeRejected(f"{key}: expected {_NAMES[old_kind]}, got {_NAMES[new_kind]}")
    if new_kind == "float" and not math.isfinite(new):
        raise ChangeRejected(f"{key}: the number must be finite")
    if new_kind == "str" and (len(new) > MAX_TEXT or "\x00" in new):
        raise ChangeRejected(f"{key}: text must be at most {MAX_TEXT} characters, without NUL")
    return plain(new)


def line_safe(key: str, text: str) -> str:
    """``text`` if it fits on one line of a line-based file; ChangeRejected otherwise."""
    if len(text) > MAX_TEXT or any(c in _CONTROL for c in text) or text != text.strip():
        raise ChangeRejected(f"{key}: the value must be one line of at most {MAX_TEXT} "
                             "characters, without control characters or surrounding spaces")
    return text


_NAMES = {"bool": "a boolean", "int": "an integer", "float": "a number", "str": "a string"}
