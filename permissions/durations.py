"""Durations as people write them: 90s, 30m, 2h, 1d, 1h30m."""

from __future__ import annotations

import re

from permissions._errors import MalformedStatement

_PART = re.compile(r"(\d+)([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """Seconds in ``text``; raise MalformedStatement on anything else or zero."""
    text = text.strip().lower()
    if text.isdigit():
        seconds = int(text)
    else:
        parts = _PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise MalformedStatement(f"invalid duration {text!r}: use e.g. 90s, 30m, 2h, 1d")
        seconds = sum(int(n) * _UNIT[u] for n, u in parts)
    if seconds <= 0:
        raise MalformedStatement("a duration must be positive")
    return seconds


def format_duration(seconds: float) -> str:
    """Short human form, e.g. 2h, 1h30m, 45s."""
    seconds = int(seconds)
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            out += f"{seconds // size}{unit}"
            seconds %= size
    return out + (f"{seconds}s" if seconds or not out else "")
