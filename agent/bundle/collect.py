"""What goes into a support bundle: diagnostic readings, configuration files and log tails.

Everything is read the way the single operations read it, and redacted before it is
staged, so nothing unredacted is ever written, even to the agent's own disk:

* readings (``diag/<section>.json``) run the catalogue's own ``diag.*`` operations; every
  string in them then passes the log redaction too (:func:`redact_json`);
* configuration files (``config/<path>``) are the regular files under ``[diag]
  file_roots``, walked without following linked directories and each opened as
  ``files.hash`` opens one (:mod:`agent.diag._paths`: real path inside a root, no final
  symbolic link, no special file); files over ``MAX_CONFIG_BYTES`` and binary files are
  refused; every line is redacted (:class:`agent.redact.LineRedactor`, key blocks across
  lines included);
* log tails (``logs/<path>``, ``logs/journal/<unit>.log``) are what ``logs.tail`` shows
  for each ``[diag] log_files`` and ``journald_units`` entry: redacted, escaped, cut.

What cannot be read is a :class:`Fault` in the manifest rather than the end of the run.

The size budget is spent in that order, readings first: what does not fit is left out
and the manifest says so (``size_limit.cut``); a log that does not fit keeps its newest
lines that do. So when a bundle would exceed its limit, logs are cut first, then
configuration files go, and the archive is never over the limit (see :class:`Staging`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from agent.diag import logs
from agent.diag._paths import PathRefused, open_checked
from agent.diag.policy import DiagConfig
from agent.redact import LineRedactor, redact_line
from agent.redact_custom import CustomRedaction

if TYPE_CHECKING:
    from agent.catalogue import OperationSpec

DIAG_SECTIONS = ("system", "cpu", "memory", "disks", "network", "processes", "services", "clock")
SECTIONS = (*DIAG_SECTIONS, "configs", "logs")
MAX_CONFIG_BYTES = 1024 * 1024
MAX_CONFIG_FILES = 1000
MAX_FAULTS = 200
MAX_NAME_CHARS = 1024  # of an archive path; a longer one is refused, never cut
_READ_CHUNK = 64 * 1024


class Stopped(Exception):
    """The operation was cancelled (deadline, revoke): the worker stops where it is."""


@dataclass(frozen=True)
class Fault:
    """Something that could not go into the bundle: ``source`` (an operation, a path or a
    unit), ``error`` a code (``outside-allowlist``, ``symlink``, ``too-large``, ...)."""

    source: str
    error: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"source": self.source[:MAX_NAME_CHARS], "error": self.error,
                "message": self.message[:200]}


@dataclass(frozen=True)
class Member:
    """A staged file: its archive path, where it came from and where its bytes lie."""

    path: str
    source: str
    offset: int
    size: int
    sha256: str
    redactions: int
    notes: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "source": self.source, "size": self.size,
                "sha256": self.sha256, "redactions": self.redactions, **self.notes}


def tar_cost(path: str, size: int) -> int:
    """An upper bound of the bytes ``path`` takes in a PAX tar: header, extended header
    for a long or non-ASCII name, content padded to 512-byte blocks."""
    return 1024 + _blocks(len(path.encode()) + 64) + _blocks(size)


def _blocks(size: int) -> int:
    return -(-size // 512) * 512


def _entry_cost(entry: dict[str, Any]) -> int:
    """An upper bound of what ``entry`` adds to the indented manifest."""
    return 2 * len(json.dumps(entry, ensure_ascii=False)) + 16


class Staging:
    """The bundle's files, redacted, in one unnamed temporary file in the agent's home,
    with what they may cost: every member and fault is charged to ``remaining`` (its
    bytes in the tar and its entry in the manifest) before it is accepted."""

    def __init__(self, spool: Path, budget: int, stop: threading.Event) -> None:
        self.file: IO[bytes] = tempfile.TemporaryFile(dir=spool)  # closed by __exit__
        self.remaining = budget
        self.members: list[Member] = []
        self.faults: list[Fault] = []
        self.faults_omitted = 0
        self.cut: list[dict[str, Any]] = []
        self.cut_omitted = 0
        self._stop = stop
        self._names: set[str] = set()

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()

    def check(self) -> None:
        """Raise Stopped once the operation was cancelled."""
        if self._stop.is_set():
            raise Stopped

    def cost(self, path: str, source: str, size: int) -> int:
        entry = Member(path, source, 0, size, "0" * 64, 0, {"cut": {"lines_dropped": 0}})
        return tar_cost(path, size) + 2 * len(json.dumps(entry.to_json(), ensure_ascii=False)) + 64

    def fits(self, path: str, source: str, size: int) -> bool:
        return self.cost(path, source, size) <= self.remaining

    def add(self, path: str, source: str, data: bytes, redactions: int,
            notes: dict[str, Any] | None = None) -> bool:
        """Stage ``data`` as ``path``; False (and noted in ``cut``) when it does not fit."""
        self.check()
        if path in self._names:
            return True  # the same file reached twice (overlapping roots): once is enough
        if not self.fits(path, source, len(data)):
            self.skip(source, len(data))
            return False
        self.remaining -= self.cost(path, source, len(data))
        offset = self.file.seek(0, os.SEEK_END)
        self.file.write(data)
        self._names.add(path)
        self.members.append(Member(path, source, offset, len(data),
                                   hashlib.sha256(data).hexdigest(), redactions, notes or {}))
        return True

    def skip(self, source: str, size: int) -> None:
        self.note_cut({"source": source[:MAX_NAME_CHARS], "size": size, "left_out": True})

    def note_cut(self, entry: dict[str, Any]) -> None:
        """List what the limit left out; only counted once the list is full (or the
        budget cannot hold the entry), so that the manifest never outgrows the limit."""
        cost = _entry_cost(entry)
        if len(self.cut) >= MAX_FAULTS or cost > self.remaining:
            self.cut_omitted += 1
            return
        self.remaining -= cost
        self.cut.append(entry)

    def fault(self, fault: Fault) -> None:
        """List what could not be read; only counted past the list's bound or budget."""
        cost = _entry_cost(fault.to_json())
        if len(self.faults) >= MAX_FAULTS or cost > self.remaining:
            self.faults_omitted += 1
            return
        self.remaining -= cost
        self.faults.append(fault)

    @property
    def limited(self) -> bool:
        """Whether the size limit left anything out."""
        return bool(self.cut) or self.cut_omitted > 0

    def read(self, member: Member) -> IO[bytes]:
        """The staging file positioned at ``member``'s bytes (read exactly ``size``)."""
        self.file.seek(member.offset)
        return self.file


# Readings -------------------------------------------------------------------------------

async def readings(readers: Mapping[str, OperationSpec],
                   sections: Sequence[str]) -> dict[str, dict[str, Any] | Fault]:
    """The ``diag.*`` operations of ``sections``, run together with their defaults: the
    snapshot's moment is the same for all of them."""
    wanted = [s for s in DIAG_SECTIONS if s in sections]
    results = await asyncio.gather(*(_reading(readers[f"diag.{s}"]) for s in wanted))
    return dict(zip(wanted, results, strict=True))


async def _reading(spec: OperationSpec) -> dict[str, Any] | Fault:
    try:
        async with asyncio.timeout(spec.deadline):
            return await spec.prepare({})()
    except TimeoutError:
        return Fault(spec.name, "timeout", f"no reading within {spec.deadline:g} s")
    except Exception as exc:  # one reading failing leaves the others in the bundle
        return Fault(spec.name, "failed", f"{type(exc).__name__}: {exc}")


def redact_json(value: Any, custom: CustomRedaction) -> tuple[Any, int]:
    """``value`` with every string passed through the log redaction, and the count."""
    if isinstance(value, str):
        return redact_line(value, custom)
    if isinstance(value, list):
        pairs = [redact_json(item, custom) for item in value]
        return [item for item, _ in pairs], sum(count for _, count in pairs)
    if isinstance(value, dict):
        out, total = {}, 0
        for key, item in value.items():
            out[key], count = redact_json(item, custom)
            total += count
        return out, total
    return value, 0


def stage_readings(staging: Staging, found: Mapping[str, dict[str, Any] | Fault],
                   custom: CustomRedaction) -> None:
    for section, reading in found.items():
        if isinstance(reading, Fault):
            staging.fault(reading)
            continue
        redacted, count = redact_json(reading, custom)
        data = (json.dumps(redacted, indent=2, sort_keys=True, ensure_ascii=False,
                           default=str) + "\n").encode()
        staging.add(f"diag/{section}.json", f"diag.{section}", data, count)


# Configuration files ---------------------------------------------------------------------

def config_paths(roots: Sequence[str]) -> Iterator[tuple[str, PathRefused | None]]:
    """Every file under ``roots`` in a fixed order, or why a path is not one to read.

    Directories that are symbolic links are reported, never entered; files that are
    links are yielded and judged when opened (their real path must stay in a root).
    """
    for root in roots:
        errors: list[OSError] = []
        for directory, subdirs, files in os.walk(root, onerror=errors.append):
            subdirs.sort()
            for name in list(subdirs):
                if os.path.islink(os.path.join(directory, name)):
                    subdirs.remove(name)
                    yield os.path.join(directory, name), PathRefused(
                        "symlink", "a symbolic link to a directory is not followed")
            for name in sorted(files):
                yield os.path.join(directory, name), None
        for error in errors:
            code = "not-found" if isinstance(error, FileNotFoundError) else "permission-denied"
            yield str(error.filename), PathRefused(code, error.strerror or "cannot be listed")


def read_config(path: str, roots: Sequence[str]) -> tuple[bytes, str]:
    """A configuration file's bytes and real path; PathRefused for what is not one."""
    with open_checked(path, roots=roots, read=True) as opened:
        if opened.status.st_size > MAX_CONFIG_BYTES:
            raise PathRefused("too-large", f"the file has more than {MAX_CONFIG_BYTES} bytes")
        chunks, total = [], 0
        while data := os.read(opened.fd, _READ_CHUNK):
            total += len(data)
            if total > MAX_CONFIG_BYTES:  # it grew while being read
                raise PathRefused("too-large", f"the file grew over {MAX_CONFIG_BYTES} bytes")
            chunks.append(data)
    content = b"".join(chunks)
    if b"\x00" in content:
        raise PathRefused("binary", "not a text file (binary files are not collected)")
    return content, opened.real_path


def redact_text(content: bytes, custom: CustomRedaction) -> tuple[bytes, int]:
    """Every line of ``content`` redacted in order (a key block may span lines)."""
    redactor = LineRedactor(custom)
    lines, total = [], 0
    for line in content.decode("utf-8", "replace").split("\n"):
        text, count = redactor.redact(line)
        lines.append(text)
        total += count
    return "\n".join(lines).encode(), total


def stage_configs(staging: Staging, diag: DiagConfig) -> None:
    seen: set[str] = set()
    count = 0
    for path, refused in config_paths(diag.file_roots):
        staging.check()
        try:
            if refused is not None:
                raise refused
            name = archive_name("config", path)
            if count >= MAX_CONFIG_FILES:
                raise PathRefused("too-many-files", f"only the first {MAX_CONFIG_FILES} files "
                                                    "under [diag] file_roots are collected")
            content, real = read_config(path, diag.file_roots)
        except PathRefused as exc:
            staging.fault(Fault(path, exc.code, str(exc)))
            if exc.code == "too-many-files":
                return
            continue
        if real in seen:
            continue
        seen.add(real)
        count += 1
        text, redactions = redact_text(content, diag.redact_patterns)
        staging.add(name, path, text, redactions)


def archive_name(prefix: str, path: str) -> str:
    """``prefix`` + the absolute ``path``; PathRefused for a name a bundle cannot carry
    (control characters, bytes that are not UTF-8, too long)."""
    name = prefix + path
    if len(name) > MAX_NAME_CHARS or any(ord(c) < 32 or ord(c) == 127 for c in name) \
            or "\\" in name or not _utf8(name):
        raise PathRefused("unsafe-name", "the file name cannot be carried in a bundle "
                                         "(control characters, a backslash, not UTF-8, "
                                         "or too long)")
    return name


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


# Logs ------------------------------------------------------------------------------------

def log_sources(diag: DiagConfig) -> list[logs.LogSource]:
    return [*(logs.LogSource("path", p) for p in diag.log_files),
            *(logs.LogSource("unit", u) for u in diag.journald_units)]


async def tails(diag: DiagConfig, lines: int) -> list[tuple[logs.LogSource, dict[str, Any]]]:
    """What ``logs.tail`` shows of every allowlisted log, ``lines`` lines each, together
    (none for 0 lines)."""
    sources = log_sources(diag) if lines > 0 else []
    results = await asyncio.gather(*(logs.tail(logs.TailQuery(s, lines, diag.redact_patterns))
                                     for s in sources))
    return list(zip(sources, results, strict=True))


def stage_logs(staging: Staging, found: Sequence[tuple[logs.LogSource, dict[str, Any]]]) -> None:
    """Each tail as a file, its newest lines kept when the budget is short. A cut log's
    ``redactions`` still count its whole tail as read (more hidden, never less told)."""
    for source, result in found:
        staging.check()
        if "error" in result or result.get("available") is False:
            staging.fault(Fault(source.name, result.get("error", "unavailable"),
                                result.get("message", result.get("reason", ""))))
            continue
        try:
            path = archive_name("logs", source.name if source.kind == "path"
                                else f"/journal/{_unit_file(source.name)}.log")
        except PathRefused as exc:
            staging.fault(Fault(source.name, exc.code, str(exc)))
            continue
        lines: list[str] = result["lines"]
        notes = {k: result[k] for k in ("lines_cut", "lines_dropped_for_size") if result.get(k)}
        keep = _lines_that_fit(staging, path, source.name, lines)
        if keep < len(lines):
            dropped = {"source": source.name, "lines_dropped": len(lines) - keep}
            if keep == 0:
                staging.note_cut({**dropped, "left_out": True})
                continue
            staging.note_cut(dropped)
            notes["cut"] = {"reason": "size-limit", "lines_dropped": len(lines) - keep}
        staging.add(path, source.name, _joined(lines[len(lines) - keep:]),
                    result["redactions"], notes)


def _unit_file(unit: str) -> str:
    """A unit name as a file name: its backslash (systemd's escapes) as ``%5C``, which no
    unit name contains, so that no archive name has a backslash."""
    return unit.replace("\\", "%5C")


def _joined(lines: Sequence[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode()


def _lines_that_fit(staging: Staging, path: str, source: str, lines: Sequence[str]) -> int:
    """How many of the newest ``lines`` fit the budget (all, when they all do)."""
    size, keep = 0, 0
    budget = staging.remaining - staging.cost(path, source, 0) - 1024  # the cut's own note
    for line in reversed(lines):
        size += len(line.encode()) + 1
        if _blocks(size) > budget:
            break
        keep += 1
    return keep
