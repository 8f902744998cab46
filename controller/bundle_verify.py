"""Offline check of a support bundle: is this archive exactly what its manifest says?

A bundle (format ``rmaint-bundle/1``, made by the agent's ``bundle.create``) is a tar.gz
whose first member is ``MANIFEST.json``, listing every other member with its size and
SHA-256. :func:`verify_bundle_file` checks, needing nothing but the file:

* the archive's SHA-256, when the expected one is given (the controller stores bundles
  by it, and the agent's signed receipt binds it);
* the manifest: first, a regular file, well-formed;
* every member: a safe name (relative, no ``..``, no empty or ``.`` part), a regular
  file (no links, devices, FIFOs or directories), listed once in the manifest, with the
  listed size and SHA-256; and no listed file missing; no two listed paths that differ
  only by case (they would clash when extracted on a case-insensitive file system);
* the archive's end: everything after the last member, to the end of the unpacked
  stream, is zero bytes (at least the two end blocks). ``tarfile`` stops at the first
  zero block, while ``tar --ignore-zeros`` reads on: a member hidden behind one zero
  block, or any garbage there, is refused.

Without the expected SHA-256 the check only says the bundle agrees with its own manifest:
whoever changed a file can change the manifest too. Only the hash the agent signed
(``rmctl bundle list``) binds the bundle to what the agent made.

It never extracts anything, and it reads in bounded memory: members are streamed through
the hash, the manifest is capped, and the unpacked total and the unpacked-to-packed ratio
are bounded, so a tar or gzip bomb is refused early instead of filling memory or disk.
Faults are :class:`Problem` entries in archive order, members first: ``problems[0]``
pinpoints the first bad member; a fault of the archive as a whole (its hash) follows
the members', and directory entries (which re-packing a tree adds) come last.
Pure but for reading the file.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import tarfile
import zlib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

FORMAT = "rmaint-bundle/1"  # the agent's agent.bundle.archive.FORMAT: the wire format
MANIFEST_NAME = "MANIFEST.json"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1024 * 1024
_BLOCK = 512
# Unpacked bytes kept behind the reader: more than tarfile reads ahead (a record,
# 10 KiB), so the archive's end can be checked from where the last member ended.
_KEEP = 256 * 1024


@dataclass(frozen=True)
class Limits:
    """What a bundle may take: packed and unpacked bytes, the packing ratio (checked
    once ``ratio_floor`` unpacked bytes are out), members, and the manifest's size."""

    max_archive_bytes: int = 1024**3  # the agent never makes a larger one
    max_unpacked_bytes: int = 8 * 1024**3
    max_ratio: int = 200
    ratio_floor: int = 16 * 1024**2
    max_members: int = 100_000
    max_manifest_bytes: int = 64 * 1024**2


@dataclass(frozen=True)
class Problem:
    """One fault: the member it is about (None for the archive as a whole), a kind
    (``sha256-mismatch``, ``unsafe-name``, ``extra``, ``missing``, ...) and a message."""

    member: str | None
    kind: str
    message: str
    minor: bool = False  # reported after the others (a directory entry)

    def to_json(self) -> dict[str, Any]:
        return {"member": self.member, "kind": self.kind, "message": self.message}


@dataclass
class BundleReport:
    """What :func:`verify_bundle_file` found; ``ok`` when there is no problem."""

    size_bytes: int = 0
    sha256: str = ""
    manifest: dict[str, Any] | None = None
    manifest_sha256: str = ""
    files_checked: int = 0
    problems: list[Problem] = field(default_factory=list)
    signed_hash_checked: bool = False  # the expected SHA-256 was given (and compared)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    def to_json(self) -> dict[str, Any]:
        manifest = self.manifest or {}
        return {"status": "ok" if self.ok else "failed", "size_bytes": self.size_bytes,
                "sha256": self.sha256, "manifest_sha256": self.manifest_sha256,
                "files": self.files_checked, "agent_id": manifest.get("agent_id"),
                "case_id": manifest.get("case_id"), "created_at": manifest.get("created_at"),
                "checked": "signed-hash" if self.signed_hash_checked else "own-manifest",
                "problems": [p.to_json() for p in self.problems]}


class _Abort(Exception):
    """Stop reading: the problem is recorded, the rest cannot be trusted."""


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _Bounded:
    """The unpacked stream, refused once it is larger (or packed tighter) than allowed."""

    def __init__(self, unpacked: _Readable, packed: IO[bytes], limits: Limits) -> None:
        self._unpacked = unpacked
        self._packed = packed
        self._limits = limits
        self.total = 0
        self._kept: deque[bytes] = deque()
        self._kept_bytes = 0

    def read(self, size: int = -1) -> bytes:
        data = self._unpacked.read(size if size >= 0 else _CHUNK)
        self.total += len(data)
        self._keep(data)
        limits = self._limits
        if self.total > limits.max_unpacked_bytes:
            raise _Bomb(f"unpacks to more than {limits.max_unpacked_bytes} bytes")
        if self.total > limits.ratio_floor \
                and self.total > limits.max_ratio * max(1, self._packed.tell()):
            raise _Bomb(f"unpacks more than {limits.max_ratio} times its packed size")
        return data

    def _keep(self, data: bytes) -> None:
        if not data:
            return
        self._kept.append(data)
        self._kept_bytes += len(data)
        while self._kept_bytes - len(self._kept[0]) >= _KEEP:
            self._kept_bytes -= len(self._kept.popleft())

    def since(self, offset: int) -> bytes | None:
        """The bytes read from ``offset`` on, or None if they are no longer kept."""
        start = self.total - self._kept_bytes
        if offset < start:
            return None
        return b"".join(self._kept)[offset - start:]


class _Bomb(Exception):
    """The archive unpacks beyond the limits."""


def verify_bundle_file(path: Path | str, expected_sha256: str | None = None, *,
                       limits: Limits = Limits()) -> BundleReport:
    """Check the bundle at ``path`` (see the module docstring); OSError if it cannot be
    read, ValueError if ``expected_sha256`` is not 64 hex digits."""
    if expected_sha256 is not None and not _HEX64.fullmatch(expected_sha256.lower()):
        raise ValueError("the expected SHA-256 must be 64 hexadecimal digits")
    report = BundleReport(signed_hash_checked=expected_sha256 is not None)
    with open(path, "rb") as raw:
        report.size_bytes = os.fstat(raw.fileno()).st_size
        if report.size_bytes > limits.max_archive_bytes:
            report.problems.append(Problem(None, "too-large", f"the archive has more than "
                                           f"{limits.max_archive_bytes} bytes"))
            return report
        report.sha256 = _file_sha256(raw)
        if expected_sha256 is not None and report.sha256 != expected_sha256.lower():
            report.problems.append(Problem(None, "sha256-mismatch", "the archive's SHA-256 is "
                                           f"{report.sha256}, not the expected one"))
        raw.seek(0)
        _Members(report, limits).check(raw)
    # Stable: archive order within each rank, so problems[0] is the first bad member.
    report.problems.sort(key=lambda p: (p.minor, p.member is None))
    return report


def _file_sha256(raw: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while chunk := raw.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


class _Members:
    """One pass over the archive's members, recording problems in the report."""

    def __init__(self, report: BundleReport, limits: Limits) -> None:
        self.report = report
        self.limits = limits
        self.listed: dict[str, dict[str, Any]] = {}
        self.seen: set[str] = set()
        self.current: str | None = None

    def problem(self, kind: str, message: str, member: str | None = None) -> None:
        self.report.problems.append(Problem(member if member is not None else self.current,
                                            kind, message))

    def check(self, raw: IO[bytes]) -> None:
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as unpacked:
                bounded = _Bounded(unpacked, raw, self.limits)
                with tarfile.open(fileobj=bounded, mode="r|") as tar:  # type: ignore[call-overload]  # only read() is needed
                    self._walk(tar)
                    end = tar.offset  # where the last member (with its padding) ended
                self.current = None
                self._end(bounded, end)
        except _Abort:
            return
        except _Bomb as exc:
            self.problem("bomb", f"refused: the archive {exc}")
            return
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            self.problem("corrupt", f"not a readable tar.gz: {exc}")
            return
        for name in self.listed:
            if name not in self.seen:
                self.problem("missing", "listed in the manifest but not in the archive", name)

    def _end(self, bounded: _Bounded, end: int) -> None:
        """Everything from ``end`` to the end of the stream must be zeros, at least the
        two end blocks. ``tarfile`` has read past ``end`` already (up to a record ahead),
        so the check starts from the bytes the reader kept. Reading to the end also
        checks the gzip trailer (CRC and length) of the whole stream."""
        rest = bounded.since(end)
        if rest is None:
            self.problem("trailing-data", "the archive's end cannot be checked")
            return
        clean = not rest.strip(b"\0")
        while clean and (more := bounded.read(_CHUNK)):
            clean = not more.strip(b"\0")
        if not clean:
            self.problem("trailing-data", "data after the archive's end (a member hidden "
                         "behind a zero block, or garbage)")
            while bounded.read(_CHUNK):  # still check the gzip trailer, bounded
                pass
        elif bounded.total - end < 2 * _BLOCK:
            self.problem("truncated", "the archive lacks its two end blocks")

    def _walk(self, tar: tarfile.TarFile) -> None:
        for index, member in enumerate(tar):
            self.current = member.name
            if index >= self.limits.max_members:
                self.problem("too-many-members", f"more than {self.limits.max_members} members")
                raise _Abort
            if index == 0:
                self._manifest(tar, member)
                continue
            self._member(tar, member)
        if self.report.manifest is None:  # an empty tar (end blocks only): nothing to trust
            self.problem("manifest-not-first", f"the archive is empty: no {MANIFEST_NAME}",
                         MANIFEST_NAME)
            raise _Abort

    def _manifest(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        if member.name != MANIFEST_NAME or not member.isreg():
            self.problem("manifest-not-first", f"the first member must be the regular file "
                         f"{MANIFEST_NAME}")
            raise _Abort
        if member.size > self.limits.max_manifest_bytes:
            self.problem("manifest-invalid", f"over {self.limits.max_manifest_bytes} bytes")
            raise _Abort
        data = _read_all(tar, member)
        self.report.manifest_sha256 = hashlib.sha256(data).hexdigest()
        try:
            # Strict JSON: NaN and Infinity are not numbers a manifest may hold (nor could a
            # report quoting them be JSON), and a lone surrogate is not text.
            manifest = json.loads(data, parse_constant=_not_json)
            json.dumps(manifest, ensure_ascii=False).encode("utf-8")
        except (ValueError, UnicodeError, RecursionError) as exc:
            self.problem("manifest-invalid", f"not JSON: {exc}")
            raise _Abort from exc
        fault = manifest_fault(manifest)
        if fault is not None:
            self.problem("manifest-invalid", fault)
            raise _Abort
        self.report.manifest = manifest
        self.listed = {entry["path"]: entry for entry in manifest["files"]}

    def _member(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        name = member.name
        unsafe = unsafe_name(name)
        if unsafe is not None:
            self.problem("unsafe-name", unsafe)
            return
        if not member.isreg():
            self.report.problems.append(Problem(name, "not-a-file", f"a {_kind(member)}, not "
                                                "a regular file", minor=member.isdir()))
            return
        if name in self.seen:
            self.problem("duplicate", "the archive holds this member twice")
            return
        self.seen.add(name)
        entry = self.listed.get(name)
        if entry is None:
            self.problem("extra", "in the archive but not listed in the manifest")
            return
        if member.size != entry["size"]:
            self.problem("size-mismatch", f"{member.size} bytes, the manifest lists "
                         f"{entry['size']}")
            return
        digest = _member_sha256(tar, member)
        if digest != entry["sha256"]:
            self.problem("sha256-mismatch", f"SHA-256 {digest}, the manifest lists "
                         f"{entry['sha256']}")
            return
        self.report.files_checked += 1


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON number")


def manifest_fault(manifest: Any) -> str | None:
    """What makes ``manifest`` not a well-formed ``rmaint-bundle/1`` manifest, or None."""
    if not isinstance(manifest, dict):
        return "not a JSON object"
    if manifest.get("format") != FORMAT:
        return f"format is {manifest.get('format')!r}, not {FORMAT!r}"
    for key in ("agent_id", "case_id"):
        if not isinstance(manifest.get(key), str):
            return f"{key} must be a string"
    created = manifest.get("created_at")
    if isinstance(created, bool) or not isinstance(created, int | float):
        return "created_at must be a number"
    files = manifest.get("files")
    if not isinstance(files, list):
        return "files must be a list"
    names: dict[str, str] = {}  # case-folded path -> path
    for index, entry in enumerate(files):
        fault = _entry_fault(entry)
        if fault is not None:
            return f"files[{index}]: {fault}"
        folded = entry["path"].casefold()
        if folded in names:
            other = names[folded]
            return f"files[{index}]: {entry['path']!r} is listed twice" \
                if other == entry["path"] else \
                f"files[{index}]: {entry['path']!r} differs from {other!r} only by case"
        names[folded] = entry["path"]
    return None


def _entry_fault(entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return "not an object"
    path = entry.get("path")
    if not isinstance(path, str):
        return "path must be a string"
    unsafe = unsafe_name(path)
    if unsafe is not None or path == MANIFEST_NAME:
        return f"path {path!r}: {unsafe or 'names the manifest'}"
    if not isinstance(entry.get("source"), str):
        return "source must be a string"
    for key in ("size", "redactions"):
        value = entry.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"{key} must be a non-negative integer"
    if not isinstance(entry.get("sha256"), str) or not _HEX64.fullmatch(entry["sha256"]):
        return "sha256 must be 64 lowercase hexadecimal digits"
    return None


def unsafe_name(name: str) -> str | None:
    """Why ``name`` could write outside a directory it is extracted to, or None."""
    if not name or "\x00" in name or "\\" in name:
        return "an empty name, or one with NUL or a backslash"
    if name.startswith("/"):
        return "an absolute path"
    parts = name.split("/")
    if ".." in parts:
        return "a path with '..'"
    if any(part in ("", ".") for part in parts):
        return "a path with an empty or '.' part"
    return None


def _kind(member: tarfile.TarInfo) -> str:
    if member.issym() or member.islnk():
        return "link"
    if member.isdir():
        return "directory"
    if member.ischr() or member.isblk():
        return "device"
    if member.isfifo():
        return "FIFO"
    return "special member"


def _read_all(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    stream = tar.extractfile(member)
    assert stream is not None  # a regular file
    return stream.read()


def _member_sha256(tar: tarfile.TarFile, member: tarfile.TarInfo) -> str:
    stream = tar.extractfile(member)
    assert stream is not None  # a regular file
    digest = hashlib.sha256()
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()
