"""Tail and search of customer-allowlisted logs, redacted line by line (scope ``diag.logs``).

A log is a file named exactly in ``[diag] log_files`` (``path``) or a journald unit named
in ``[diag] journald_units`` (``unit``); anything else is InvalidParams. Every line is
redacted (:class:`agent.redact.LineRedactor`, with up to 64 KiB of the preceding file
as context so that a private key block begun before the lines shown stays hidden), cut
to ``MAX_LINE_CHARS`` characters, and control characters are shown in caret notation
(``^[``), so that no terminal escape reaches the engineer. The customer's
``redact_patterns`` apply too; with any configured, results also hold
``redactions_by_pattern``: of ``redactions``, how many each pattern hid.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections import Counter
from dataclasses import dataclass
from typing import Any

from agent.diag._paths import PathRefused, open_checked
from agent.diag.params import ParamReader, Params
from agent.diag.policy import DiagConfig
from agent.redact import LineRedactor
from agent.redact_custom import NO_PATTERNS, CustomRedaction

MAX_LINES = 1000
MAX_LINE_CHARS = 2048
MAX_LINE_BYTES = 64 * 1024  # of one line read; the rest of a longer line is not shown
CONTEXT_BYTES = 64 * 1024
MAX_TAIL_BYTES = 16 * 1024 * 1024
OUTPUT_BUDGET = 768 * 1024  # characters of JSON-encoded lines in one result
JOURNAL_TIMEOUT = 10.0
JOURNAL_SCAN_ENTRIES = 10_000
_ENV = {"LANG": "C.UTF-8", "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": "",
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
_CARETS = {c: "^" + chr(c + 64) for c in range(32) if c != 9} | {127: "^?"}


@dataclass(frozen=True)
class LogSource:
    """A validated log: ``kind`` is ``path`` or ``unit``, ``name`` the allowlisted entry."""

    kind: str
    name: str

    def label(self) -> dict[str, str]:
        return {self.kind: self.name}


@dataclass(frozen=True)
class TailQuery:
    source: LogSource
    lines: int = 100
    custom: CustomRedaction = NO_PATTERNS


def parse_source(reader: ParamReader, diag: DiagConfig) -> LogSource:
    """``path`` in ``[diag] log_files`` or ``unit`` in ``[diag] journald_units``."""
    kind = reader.one_of(("path", "unit"))
    name = reader.text(kind, max_length=4096)
    if kind == "path":
        if ".." in name.split("/"):  # normpath would drop it whatever symbolic links say
            reader.fail("path must not contain '..'")
        name = os.path.normpath(name) if os.path.isabs(name) else name
        if name not in diag.log_files:
            reader.fail("path is not a log file allowlisted in [diag] log_files of agent.toml")
    elif name not in diag.journald_units:
        reader.fail("unit is not allowlisted in [diag] journald_units of agent.toml")
    return LogSource(kind, name)


def parse_tail(params: Params, diag: DiagConfig) -> TailQuery:
    """``path`` or ``unit``; ``lines`` 1..1000 (default 100)."""
    reader = ParamReader("logs.tail", params, {"path", "unit", "lines"})
    return TailQuery(parse_source(reader, diag), reader.integer("lines", 100, 1, MAX_LINES),
                     diag.redact_patterns)


async def tail(query: TailQuery) -> dict[str, Any]:
    """The last ``query.lines`` lines, redacted, oldest first."""
    if query.source.kind == "unit":
        return await _tail_journal(query)
    try:
        return await asyncio.to_thread(_tail_file, query)
    except PathRefused as refused:
        return {"path": query.source.name, "error": refused.code, "message": str(refused)}


def _tail_file(query: TailQuery) -> dict[str, Any]:
    raw, size = _read_tail(query.source.name, query.lines)
    return {"path": query.source.name, "size_bytes": size,
            **present(raw, query.lines, context=True, custom=query.custom)}


def present(raw: list[bytes], count: int, *, context: bool,
            custom: CustomRedaction = NO_PATTERNS) -> dict[str, Any]:
    """The last ``count`` of ``raw`` lines redacted, escaped, cut and fitted to the budget.

    With ``context``, the first line may be a fragment and is never shown.
    """
    redactor = LineRedactor(custom)
    first_shown = max(int(context), len(raw) - count)
    lines, redactions, cut = [], 0, 0
    for index, line in enumerate(raw):
        decoded = line[:MAX_LINE_BYTES].decode("utf-8", "replace")
        if index < first_shown:
            redactor.follow(decoded)  # context: only the redactor's state matters
            continue
        text, hidden = redactor.redact(decoded)
        cut += len(line) > MAX_LINE_BYTES or len(text) > MAX_LINE_CHARS
        lines.append(escape(text[:MAX_LINE_CHARS]))
        redactions += hidden
    dropped = fit(lines)
    return {"lines": lines, "line_count": len(lines), "redactions": redactions,
            **by_pattern(custom, redactor.custom_counts),
            "lines_cut": cut, "lines_dropped_for_size": dropped}


def by_pattern(custom: CustomRedaction, counts: Counter[str]) -> dict[str, Any]:
    """``redactions_by_pattern`` where the customer configured patterns, else nothing."""
    return {"redactions_by_pattern": custom.report(counts)} if custom else {}


def escape(text: str) -> str:
    """Control characters (but tab) in caret notation: ``\\x1b`` becomes ``^[``."""
    return text.translate(_CARETS)


def fit(lines: list[Any]) -> int:
    """Drop the oldest entries until the encoded ones fit OUTPUT_BUDGET; how many went."""
    total, keep = 0, len(lines)
    for index in range(len(lines) - 1, -1, -1):
        total += len(json.dumps(lines[index], ensure_ascii=False))
        if total > OUTPUT_BUDGET:
            keep = len(lines) - 1 - index
            break
    dropped = len(lines) - keep
    del lines[:dropped]
    return dropped


def _read_tail(path: str, count: int) -> tuple[list[bytes], int]:
    """Lines of the file's end: ``count`` complete lines after up to CONTEXT_BYTES."""
    with open_checked(path, roots=None, read=True) as opened:
        size = opened.status.st_size
        start, newlines, chunks = size, 0, []
        while start > 0 and newlines <= count and size - start < MAX_TAIL_BYTES:
            step = min(CONTEXT_BYTES, start)
            start -= step
            chunks.append(os.pread(opened.fd, step, start))
            newlines += chunks[-1].count(b"\n")
        begin = max(0, start - CONTEXT_BYTES)
        chunks.append(os.pread(opened.fd, start - begin, begin))
    lines = b"".join(reversed(chunks)).split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the file ends with a newline
    if begin == 0:
        lines.insert(0, b"")  # no fragment at the start: a harmless empty one
    return lines, size


async def _tail_journal(query: TailQuery) -> dict[str, Any]:
    unit = query.source.name
    try:
        out = await journal(unit, query.lines)
    except JournalUnavailable as exc:
        return {"unit": unit, "available": False, "reason": str(exc)}
    raw = out.split(b"\n")
    if raw and raw[-1] == b"":
        raw.pop()
    shown = await asyncio.to_thread(present, raw, query.lines, context=False,
                                    custom=query.custom)
    return {"unit": unit, "available": True, **shown}


class JournalUnavailable(Exception):
    """journalctl cannot be used; the message says why."""


def journalctl() -> str:
    path = shutil.which("journalctl", path=_ENV["PATH"])
    if path is None:
        raise JournalUnavailable("journalctl is not installed")
    return path


def journal_argv(unit: str, entries: int) -> list[str]:
    return [journalctl(), "-u", unit, "-n", str(entries), "--no-pager", "-o", "short-iso",
            "--quiet"]


async def journal(unit: str, entries: int) -> bytes:
    """The last ``entries`` entries of ``unit``, as journalctl prints them."""
    proc = await asyncio.create_subprocess_exec(
        *journal_argv(unit, entries), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=_ENV)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), JOURNAL_TIMEOUT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise JournalUnavailable(f"journalctl failed: {err.decode(errors='replace')[:200]}")
    return out

