"""Redaction patterns the customer adds: ``redact_patterns`` in ``[diag]`` of agent.toml.

::

    [diag]
    redact_patterns = [
        "ACME-[0-9]{8}",                                # counted as diag.redact_patterns[0]
        { name = "ticket", pattern = "TCK/[A-Z]{3}/[0-9]+" },  # counted as "ticket"
    ]

Each pattern is an RE2 regular expression (google-re2), compiled once when the
configuration is loaded. RE2 matches in time linear in the input, whatever the pattern:
command lines and log lines are written by anyone on the host, and a backtracking
pattern on a crafted line could hold the agent for minutes; with RE2 no such pattern
exists. What RE2 cannot promise that for (backreferences, lookahead and lookbehind) it
does not compile, so such patterns are refused, as are invalid and oversized ones and
patterns that match the empty string (they would hide nothing and count nonsense).

Every match is replaced by ``***`` and counted under the pattern's name. Pure.
"""

from __future__ import annotations

import importlib.util
import os.path
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

MAX_PATTERNS = 64
MAX_PATTERN_CHARS = 1000
_MAX_PROGRAM_BYTES = 1 << 20  # RE2's memory budget for one compiled pattern
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _re2() -> Any:
    """google-re2 (it ships no type information), loaded with the first pattern: an agent
    without custom patterns never needs it."""
    import re2  # type: ignore[import-untyped]
    return re2


def re2_path() -> str:
    """Where re2 is imported from: a child interpreter started without site-packages
    (``python -I -S``, see agent.diag._grep) puts it on its path. Found, not imported."""
    spec = importlib.util.find_spec("re2")
    if spec is None or spec.origin is None:
        raise ImportError("google-re2 is not installed")
    return os.path.dirname(os.path.dirname(os.path.abspath(spec.origin)))


class PatternInvalid(ValueError):
    """A configured pattern cannot be used; the message names it and says why."""


def _options() -> Any:
    options = _re2().Options()
    options.log_errors = False  # the reason goes into PatternInvalid, not to stderr
    options.max_mem = _MAX_PROGRAM_BYTES
    return options


@dataclass(frozen=True)
class CustomPattern:
    """One compiled pattern; ``label`` is what its redactions are counted under."""

    pattern: str
    name: str | None
    label: str
    regex: Any = field(repr=False, compare=False)

    @classmethod
    def compile(cls, pattern: str, name: str | None, where: str) -> CustomPattern:
        """``pattern`` compiled, or PatternInvalid naming ``where`` and the pattern."""
        shown = f"{where} ({pattern[:80]!r})"
        if not pattern or len(pattern) > MAX_PATTERN_CHARS or "\x00" in pattern:
            raise PatternInvalid(f"{shown}: a pattern is 1 to {MAX_PATTERN_CHARS} characters")
        if name is not None and not _NAME.fullmatch(name):
            raise PatternInvalid(f"{shown}: name must be 1 to 64 letters, digits, '_', '.' "
                                 "or '-', starting with a letter or digit")
        re2 = _re2()
        try:
            regex = re2.compile(pattern, _options())
        except re2.error as exc:
            reason = exc.args[0].decode(errors="replace") if exc.args else "invalid"
            raise PatternInvalid(f"{shown}: not a usable RE2 pattern ({reason}; "
                                 "backreferences and lookaround are not supported)") from exc
        if regex.search("") is not None:
            raise PatternInvalid(f"{shown}: matches the empty string")
        return cls(pattern, name, name or where, regex)


@dataclass(frozen=True)
class CustomRedaction:
    """The customer's patterns, applied in order after the built-in redaction."""

    patterns: tuple[CustomPattern, ...] = ()

    def __post_init__(self) -> None:
        labels = [p.label for p in self.patterns]
        duplicates = sorted({label for label in labels if labels.count(label) > 1})
        if duplicates:
            raise PatternInvalid(f"diag.redact_patterns: duplicate name {', '.join(duplicates)}")
        if len(self.patterns) > MAX_PATTERNS:
            raise PatternInvalid(f"diag.redact_patterns: at most {MAX_PATTERNS} patterns")

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def labels(self) -> tuple[str, ...]:
        return tuple(p.label for p in self.patterns)

    def apply(self, text: str, mask: str, counts: Counter[str]) -> str:
        """``text`` with every match replaced by ``mask``, each counted in ``counts``.

        Lone surrogates (undecodable bytes of a command line or file name) come back as
        U+FFFD: RE2 matches UTF-8, which cannot carry them.
        """
        text = _encodable(text)
        for pattern in self.patterns:
            hits = 0

            def replace(match: Any) -> str:
                nonlocal hits
                found: str = match.group()
                if not found or found.strip("*") == "":
                    return found  # nothing, or a value hidden already
                hits += 1
                return mask

            text = pattern.regex.sub(replace, text)
            if hits:
                counts[pattern.label] += hits
        return text

    def to_json(self) -> list[list[str]]:
        """``[label, pattern]`` pairs, to hand the patterns to a child process."""
        return [[p.label, p.pattern] for p in self.patterns]

    @classmethod
    def from_json(cls, pairs: list[list[str]]) -> CustomRedaction:
        """The patterns of :meth:`to_json`, compiled again (they were checked at load)."""
        return cls(tuple(CustomPattern.compile(pattern, None, label) for label, pattern in pairs))

    def report(self, counts: Counter[str]) -> dict[str, int]:
        """Counts by label, every configured label present (zero included)."""
        return {label: counts.get(label, 0) for label in self.labels()}


def _encodable(text: str) -> str:
    return text if text.isascii() else _SURROGATE.sub("\ufffd", text)


NO_PATTERNS = CustomRedaction()
