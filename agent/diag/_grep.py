"""The search of ``logs.search``, run in a child process that can be killed.

Python's ``re`` backtracks, and no thread can interrupt a match: a pattern and a line
crafted together could hold the agent for hours. So patterns are checked first
(:func:`check_pattern`: a length limit, no backreferences, no lookaround, no quantified
group that itself holds a quantifier or an alternation), lines are cut to a fixed length
before matching, and the search runs in this child process, which the agent kills when
its time budget is spent.

The child reads the log on stdin, redacts every line (so matching sees only what an
engineer may see: a search cannot probe a secret), and writes one JSON object per
match, ``{"o": byte offset, "l": redacted line, "r": redactions}`` (and ``"c"``: of
them, those of each customer pattern, where any hid something), then a last
``{"done": true, "lines": n, "bytes": n}``. Its one argument is a JSON object:
``pattern``, ``literal`` (the fixed string searched for, or null for a regular
expression), ``ignore_case``, ``report_from`` (earlier lines are context for the
redaction of key blocks only), ``end`` (stop at this offset, or null), ``max_line``
(bytes of a line read), ``match_chars`` (characters of a line matched and shown) and
``redact_patterns`` (the customer's, as ``[label, pattern]`` pairs).
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

MAX_PATTERN = 200
_REPEAT = re.compile(r"\{\d*(?:,\d*)?\}")


def check_pattern(pattern: str) -> str | None:
    """Why ``pattern`` is refused, or None if it may be used (it also compiles)."""
    if len(pattern) > MAX_PATTERN:
        return f"longer than {MAX_PATTERN} characters"
    reason = _check_features(pattern)
    if reason is not None:
        return reason
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"not a valid regular expression: {exc}"
    except (OverflowError, RecursionError):  # a{99999999999999999999}, or deep nesting
        return "not a valid regular expression: a repeat count or nesting too large"
    return None


def _quantifier_at(pattern: str, i: int) -> int:
    """Length of the quantifier at ``i`` (0 if none)."""
    if i < len(pattern) and pattern[i] in "*+?":
        return 1
    match = _REPEAT.match(pattern, i)
    return len(match.group()) if match else 0


def _skip_class(pattern: str, i: int) -> int:
    """The index after the character class that starts at ``i``."""
    j = i + 1
    if pattern.startswith("^", j):
        j += 1
    if pattern.startswith("]", j):
        j += 1
    while j < len(pattern) and pattern[j] != "]":
        j += 2 if pattern[j] == "\\" else 1
    return j + 1


def _check_features(pattern: str) -> str | None:
    # Per open group: does it hold a quantifier or an alternation?
    risky: list[bool] = [False]
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            if pattern[i + 1:i + 2].isdigit() and pattern[i + 1] != "0":
                return "backreferences are not allowed"
            i += 2
        elif c == "[":
            i = _skip_class(pattern, i)
        elif c == "(":
            if pattern.startswith(("(?=", "(?!", "(?<=", "(?<!"), i):
                return "lookahead and lookbehind are not allowed"
            if pattern.startswith(("(?P=", "(?("), i):
                return "backreferences are not allowed"
            risky.append(False)
            i += 1
        elif c == ")" and len(risky) > 1:
            inner = risky.pop()
            if inner and _quantifier_at(pattern, i + 1):
                return "a repeated group may not contain a repetition or an alternation"
            risky[-1] = risky[-1] or inner
            i += 1
        else:
            length = 0 if c == "|" else _quantifier_at(pattern, i)
            if c == "|" or length:
                risky[-1] = True
            i += max(1, length)
    return None


def main() -> None:
    """Entry point of the child process (see the module docstring)."""
    from agent.redact import LineRedactor
    from agent.redact_custom import CustomRedaction

    config: dict[str, Any] = json.loads(sys.argv[1])
    ignore_case = bool(config["ignore_case"])
    regex = re.compile(config["pattern"], re.IGNORECASE if ignore_case else 0)
    needle = _needle(config.get("literal"), ignore_case)
    redactor = LineRedactor(CustomRedaction.from_json(config["redact_patterns"]))
    source, out = sys.stdin.buffer, sys.stdout
    offset = lines = 0
    end, max_line, chars = config["end"], config["max_line"], config["match_chars"]
    while end is None or offset < end:
        raw = source.readline(max_line)
        if not raw:
            break
        start, offset = offset, offset + len(raw)
        if not raw.endswith(b"\n") and len(raw) == max_line:  # skip the rest of a long line
            while (rest := source.readline(max_line)) and not rest.endswith(b"\n"):
                offset += len(rest)
            offset += len(rest)
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if start < config["report_from"]:
            redactor.follow(line)  # context: only the redactor's state matters
            continue
        lines += 1
        if needle is not None and not _may_hold(line, needle, ignore_case):
            redactor.follow(line)  # cannot match: spare the redaction
            continue
        text, count = redactor.redact(line)
        custom = redactor.take_custom_counts()
        shown = text[:chars]
        if regex.search(shown):
            found = {"o": start, "l": shown, "r": count}
            out.write(json.dumps({**found, "c": custom} if custom else found) + "\n")
    out.write(json.dumps({"done": True, "lines": lines, "bytes": offset}) + "\n")
    out.flush()


def _needle(literal: str | None, ignore_case: bool) -> str | None:
    """The fixed string to pre-check raw lines with, where that is sound.

    Redaction only replaces text with ``***``: a match in the redacted line that does
    not touch a ``*`` is in the raw line too. Case folding is left to ``re`` outside ASCII.
    """
    if literal is None or "*" in literal or not literal.isascii():
        return None
    return literal.lower() if ignore_case else literal


def _may_hold(line: str, needle: str, ignore_case: bool) -> bool:
    if not ignore_case:
        return needle in line
    return not line.isascii() or needle in line.lower()
