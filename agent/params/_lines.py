"""Editing INI and key=value files line by line: only the changed values' text moves.

Comments, blank lines, order, spacing around ``=`` and line endings stay as written.
A key is found by exact name (INI: within its section); a key that appears twice in
the same place, or an INI value continued on indented lines, is refused rather than
guessed at. Values are text: a value that reads as an integer only takes an integer.
In key=value files a value in matching quotes keeps them (the quotes are not part of
the value) and ``export KEY=...`` lines are understood. Such files are often sourced by a
shell, so a new value must read as plain text there: nothing a shell would expand inside
double quotes, only plain words unquoted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.params._values import Values, kind, line_safe
from agent.params.errors import ChangeRejected

_SECTION = re.compile(r"\s*\[([^\]\r\n]+)\]\s*(?:[#;].*)?")
_COMMENT = re.compile(r"\s*(?:[#;]|$)")
_INI_ENTRY = re.compile(r"(\s*)([^\s=:#;\[][^=:\r\n]*?)(\s*[=:][ \t]*)(.*?)([ \t]*)")
_KV_ENTRY = re.compile(r"(\s*(?:export\s+)?)([^\s=#][^=\r\n]*?)(\s*=[ \t]*)(.*?)([ \t]*)")
_INTEGER = re.compile(r"[+-]?[0-9]+")
# What a shell sourcing a key=value file reads as itself in an unquoted value, and what it
# expands inside double quotes.
_SHELL_PLAIN = re.compile(r"[A-Za-z0-9_./:@%+,=-]*")
_SHELL_EXPANDS_IN_DOUBLE = frozenset("$`\\\"")


@dataclass(frozen=True)
class _Entry:
    """Where a value sits: line index, the text before and after it, its quote."""

    index: int
    head: str
    value: str
    tail: str
    quote: str = ""


def read(fmt: str, text: str, key: str) -> str:
    """The text value of ``key``; ChangeRejected when missing or ambiguous."""
    return _find(fmt, _split(text), key).value


def edit(fmt: str, text: str, changes: Mapping[str, Any]) -> tuple[str, Values, Values]:
    """``text`` with ``changes`` made, the old value of each key and its new text."""
    lines = _split(text)
    old: Values = {}
    new: Values = {}
    for key, value in changes.items():
        entry = _find(fmt, lines, key)
        rendered = _render(key, entry, value)
        if fmt == "kv":
            _shell_inert(key, entry.quote, rendered)
        old[key], new[key] = entry.value, rendered
        lines[entry.index] = f"{entry.head}{entry.quote}{rendered}{entry.quote}{entry.tail}"
    return "".join(lines), old, new


def _render(key: str, entry: _Entry, new: Any) -> str:
    new_kind = kind(new)
    if new_kind is None:
        raise ChangeRejected(f"{key}: the new value must be a string, number or boolean")
    text = str(new).lower() if new_kind == "bool" else str(new)
    if _INTEGER.fullmatch(entry.value) and not _INTEGER.fullmatch(text):
        raise ChangeRejected(f"{key}: expected an integer, got {new!r:.40}")
    line_safe(key, text)
    if entry.quote and (entry.quote in text or "\\" in text):
        raise ChangeRejected(f"{key}: a quoted value cannot contain {entry.quote} or a backslash")
    return text


def _shell_inert(key: str, quote: str, text: str) -> None:
    """Refuse a key=value value that a shell sourcing the file would not read as text:
    command substitution, expansions, or (unquoted) anything beyond plain words."""
    if quote == '"' and _SHELL_EXPANDS_IN_DOUBLE & set(text):
        raise ChangeRejected(f"{key}: a double-quoted value cannot contain $, ` or a "
                             "backslash (a shell sourcing the file would expand them)")
    if not quote and not _SHELL_PLAIN.fullmatch(text):
        raise ChangeRejected(f"{key}: an unquoted value may hold only letters, digits and "
                             "_ . / : @ % + , = - (a shell sourcing the file would run the rest)")


def _find(fmt: str, lines: list[str], key: str) -> _Entry:
    found = _find_ini(lines, key) if fmt == "ini" else _find_kv(lines, key)
    if not found:
        raise ChangeRejected(f"{key}: the file has no such key")
    if len(found) > 1:
        raise ChangeRejected(f"{key}: the key appears {len(found)} times; refusing to guess")
    return found[0]


def _find_ini(lines: list[str], key: str) -> list[_Entry]:
    section, _, option = key.rpartition(".")
    current, found = "", []
    for index, line in enumerate(lines):
        body, ending = _split_ending(line)
        header = _SECTION.fullmatch(body)
        if header:
            current = header.group(1).strip()
            continue
        match = None if _COMMENT.match(body) else _INI_ENTRY.fullmatch(body)
        if match and current == section and match.group(2) == option:
            if _continued(lines, index):
                raise ChangeRejected(f"{key}: the value continues on the next line; "
                                     "multi-line values cannot be changed")
            found.append(_entry(index, match, ending, quotes=False))
    return found


def _find_kv(lines: list[str], key: str) -> list[_Entry]:
    found = []
    for index, line in enumerate(lines):
        body, ending = _split_ending(line)
        match = None if _COMMENT.match(body) else _KV_ENTRY.fullmatch(body)
        if match and match.group(2) == key:
            found.append(_entry(index, match, ending, quotes=True))
    return found


def _entry(index: int, match: re.Match[str], ending: str, *, quotes: bool) -> _Entry:
    head = match.group(1) + match.group(2) + match.group(3)
    value, tail = match.group(4), match.group(5) + ending
    if quotes and len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return _Entry(index, head, value[1:-1], tail, value[0])
    return _Entry(index, head, value, tail)


def _continued(lines: list[str], index: int) -> bool:
    if index + 1 >= len(lines):
        return False
    following, _ = _split_ending(lines[index + 1])
    return bool(following[:1].isspace() and following.strip()
                and not _COMMENT.match(following))


def _split(text: str) -> list[str]:
    """Lines with their endings; only ``\n`` ends a line, as it does for the programs
    that read these files (``str.splitlines`` would also split at form feeds and more)."""
    return re.findall(r"[^\n]*\n|[^\n]+$", text)


def _split_ending(line: str) -> tuple[str, str]:
    body = line.rstrip("\r\n")
    return body, line[len(body):]
