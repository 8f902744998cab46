"""``logs.search``: matching lines of an allowlisted log (scope ``diag.logs``).

The search runs in a child process (see :mod:`agent.diag._grep`) that matches redacted
lines only, and is killed when its time budget is spent; the result then says
``"complete": false`` and holds the matches found so far. Files are searched over their
last ``scan_bytes``; journald units over their last 10,000 entries. The customer's
``redact_patterns`` apply too: with any configured, results also hold
``redactions_by_pattern`` (of ``redactions``, how many each pattern hid).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
from collections import Counter, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.diag import _grep
from agent.diag._paths import PathRefused, open_checked
from agent.diag.logs import (
    _ENV,
    CONTEXT_BYTES,
    JOURNAL_SCAN_ENTRIES,
    MAX_LINE_BYTES,
    MAX_LINE_CHARS,
    JournalUnavailable,
    LogSource,
    by_pattern,
    escape,
    fit,
    journal_argv,
    parse_source,
)
from agent.diag.params import ParamReader, Params
from agent.diag.policy import DiagConfig
from agent.redact_custom import NO_PATTERNS, CustomRedaction, re2_path

SEARCH_BUDGET = 10.0
DEFAULT_SCAN_BYTES = 16 * 1024 * 1024
MAX_SCAN_BYTES = 256 * 1024 * 1024
_ROOT = str(Path(__file__).resolve().parents[2])  # where the ``agent`` package lives
_CHILD = ("import sys; sys.path.insert(0, sys.argv[2]); sys.path.append(sys.argv[3]); "
          "from agent.diag._grep import main; main()")


@dataclass(frozen=True)
class SearchQuery:
    """Validated parameters of ``logs.search``."""

    source: LogSource
    pattern: str
    regex: bool = False
    ignore_case: bool = False
    limit: int = 100
    scan_bytes: int = DEFAULT_SCAN_BYTES
    budget: float = SEARCH_BUDGET
    custom: CustomRedaction = NO_PATTERNS


def parse_search(params: Params, diag: DiagConfig) -> SearchQuery:
    """``path`` or ``unit``; ``pattern`` (1..200 characters, a fixed string unless
    ``regex`` is true); ``ignore_case``; ``limit`` 1..1000 most recent matches (100);
    ``scan_bytes`` of a file's end to search, 1 MiB..256 MiB (16 MiB). Every line is
    redacted before it is matched: a regular expression gets through some 8 MiB of a
    typical log per second, a fixed string several times more (lines that cannot hold it
    are not redacted). A search that runs out of its budget reports ``complete: false``.
    """
    reader = ParamReader("logs.search", params, {
        "path", "unit", "pattern", "regex", "ignore_case", "limit", "scan_bytes"})
    source = parse_source(reader, diag)
    pattern = reader.text("pattern", max_length=_grep.MAX_PATTERN)
    regex = reader.boolean("regex", False)
    if regex and (reason := _grep.check_pattern(pattern)) is not None:
        reader.fail(f"pattern: {reason}")
    if reader.has("scan_bytes") and source.kind == "unit":
        reader.fail("scan_bytes applies to files only")
    return SearchQuery(source, pattern, regex, reader.boolean("ignore_case", False),
                       reader.integer("limit", 100, 1, 1000),
                       reader.integer("scan_bytes", DEFAULT_SCAN_BYTES, 1 << 20, MAX_SCAN_BYTES),
                       custom=diag.redact_patterns)


async def search(query: SearchQuery) -> dict[str, Any]:
    """The most recent ``query.limit`` matching lines, redacted, oldest first."""
    label = query.source.label()
    try:
        async with _log_input(query) as scan:
            found = await _run_child(query, scan)
    except PathRefused as refused:
        return {**label, "error": refused.code, "message": str(refused)}
    except JournalUnavailable as exc:
        return {**label, "available": False, "reason": str(exc)}
    return {**label, "pattern": query.pattern, "regex": query.regex,
            "ignore_case": query.ignore_case, **found}


@dataclass(frozen=True)
class _Scan:
    """The child's input: ``fd`` read from file offset ``begin`` (None: a journal);
    lines before ``report_from`` are context; stop at ``end`` (both relative to begin).
    """

    fd: int
    begin: int | None
    report_from: int
    end: int | None


@contextlib.asynccontextmanager
async def _log_input(query: SearchQuery) -> AsyncIterator[_Scan]:
    if query.source.kind == "path":
        scan = await asyncio.to_thread(_open_file, query)
        try:
            yield scan
        finally:
            os.close(scan.fd)
        return
    read, write = os.pipe()
    try:
        journal = await asyncio.create_subprocess_exec(
            *journal_argv(query.source.name, JOURNAL_SCAN_ENTRIES),
            stdin=asyncio.subprocess.DEVNULL, stdout=write,
            stderr=asyncio.subprocess.DEVNULL, env=_ENV)
    except BaseException:
        os.close(read)
        raise
    finally:
        os.close(write)
    try:
        yield _Scan(read, None, 0, None)
    finally:
        os.close(read)
        await _stop(journal)


def _open_file(query: SearchQuery) -> _Scan:
    with open_checked(query.source.name, roots=None, read=True) as opened:
        size = opened.status.st_size
        report_from = max(0, size - query.scan_bytes)
        begin = max(0, report_from - CONTEXT_BYTES)
        fd = os.dup(opened.fd)
    os.lseek(fd, begin, os.SEEK_SET)
    return _Scan(fd, begin, report_from - begin, size - begin)


async def _run_child(query: SearchQuery, scan: _Scan) -> dict[str, Any]:
    config = {"pattern": query.pattern if query.regex else re.escape(query.pattern),
              "literal": None if query.regex else query.pattern,
              "ignore_case": query.ignore_case, "report_from": scan.report_from,
              "end": scan.end, "max_line": MAX_LINE_BYTES, "match_chars": MAX_LINE_CHARS,
              "redact_patterns": query.custom.to_json()}
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-I", "-S", "-c", _CHILD, json.dumps(config), _ROOT, re2_path(),
        stdin=scan.fd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, limit=1 << 20)
    matches: deque[dict[str, Any]] = deque(maxlen=query.limit)
    count, done = 0, None
    try:
        async with asyncio.timeout(query.budget):
            assert child.stdout is not None
            while line := await child.stdout.readline():
                item = json.loads(line)
                if item.get("done"):
                    done = item
                    break
                count += 1
                matches.append(item)
    except TimeoutError:
        pass  # budget spent: report what was found
    finally:
        await _stop(child)
    return _found(list(matches), count, done, scan, query.custom)


def _found(matches: list[dict[str, Any]], count: int, done: dict[str, Any] | None,
           scan: _Scan, custom: CustomRedaction) -> dict[str, Any]:
    rows = [{"offset_bytes": None if scan.begin is None else scan.begin + m["o"],
             "line": escape(m["l"])} for m in matches]
    dropped = fit(rows)
    shown = matches[dropped:]
    return {"matches": rows, "match_count": count,
            "redactions": sum(m["r"] for m in shown),
            **by_pattern(custom, sum((Counter(m.get("c", {})) for m in shown), Counter())),
            "scanned_lines": done["lines"] if done else None,
            "complete": done is not None, "lines_dropped_for_size": dropped}


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
