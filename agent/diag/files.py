"""Status and SHA-256 of files under customer-allowlisted roots (scope ``diag.files``).

A path must be absolute, without ``..``, and lexically under a ``[diag] file_roots``
entry (else InvalidParams); at run time its real path must be under a root's real
path too. What cannot be used gives a result ``{"path", "error", "message"}`` with
``error`` one of ``outside-allowlist``, ``not-found``, ``permission-denied``,
``symlink``, ``special-file``, ``is-directory``, ``too-large``, ``changed``.
"""

from __future__ import annotations

import asyncio
import grp
import hashlib
import os
import pwd
import stat
import threading
import time
from dataclasses import dataclass
from typing import Any

from agent.diag._paths import PathRefused, inside, open_checked
from agent.diag.params import ParamReader, Params
from agent.diag.policy import DiagConfig

CHUNK = 1024 * 1024
MAX_PATH = 4096


@dataclass(frozen=True)
class FileQuery:
    """Validated parameters of ``files.stat`` and ``files.hash``, with the allowlist."""

    path: str
    roots: tuple[str, ...]
    max_hash_bytes: int


def parse_file(operation: str, params: Params, diag: DiagConfig) -> FileQuery:
    """``path``: absolute, no ``..``, under a root of ``[diag] file_roots``."""
    reader = ParamReader(operation, params, {"path"})
    path = reader.text("path", max_length=MAX_PATH)
    if not os.path.isabs(path) or ".." in path.split("/"):
        reader.fail("path must be absolute, without '..'")
    path = os.path.normpath(path)
    if not any(inside(path, root) for root in diag.file_roots):
        reader.fail("path is not under a root allowlisted in [diag] file_roots of agent.toml")
    return FileQuery(path, diag.file_roots, diag.max_hash_bytes)


async def stat_file(query: FileQuery) -> dict[str, Any]:
    """Type, size, permissions, owner and times of a file or directory."""
    return await asyncio.to_thread(_stat, query)


async def hash_file(query: FileQuery) -> dict[str, Any]:
    """SHA-256 of a regular file of at most ``max_hash_bytes``, read in chunks.

    The worker thread owns the file from open to close and checks between chunks
    whether the operation was cancelled (deadline, revoke), so it stops within a chunk.
    """
    stop = threading.Event()
    try:
        return await asyncio.to_thread(_hash, query, stop)
    except asyncio.CancelledError:
        stop.set()
        raise


def _hash(query: FileQuery, stop: threading.Event) -> dict[str, Any]:
    started = time.monotonic()
    try:
        with open_checked(query.path, roots=query.roots, read=True) as opened:
            if opened.status.st_size > query.max_hash_bytes:
                raise PathRefused("too-large", f"the file has more than {query.max_hash_bytes} "
                                               "bytes, the limit of [diag] max_hash_bytes")
            sha, total = hashlib.sha256(), 0
            while not stop.is_set() and (data := os.read(opened.fd, CHUNK)):
                total += len(data)
                if total > query.max_hash_bytes:  # it grew while being read
                    raise PathRefused("too-large", "the file grew over [diag] max_hash_bytes")
                sha.update(data)
    except PathRefused as refused:
        return _refusal(query.path, refused)
    return {"path": query.path, "real_path": opened.real_path, "sha256": sha.hexdigest(),
            "size_bytes": total, "duration_seconds": round(time.monotonic() - started, 3)}


def _stat(query: FileQuery) -> dict[str, Any]:
    try:
        with open_checked(query.path, roots=query.roots, read=False,
                          directories=True) as opened:
            return {"path": query.path, "real_path": opened.real_path,
                    **describe(opened.status)}
    except PathRefused as refused:
        return _refusal(query.path, refused)


def describe(status: os.stat_result) -> dict[str, Any]:
    """The JSON-ready status of a file."""
    return {
        "type": "directory" if stat.S_ISDIR(status.st_mode) else "file",
        "size_bytes": status.st_size, "permissions": stat.filemode(status.st_mode),
        "mode": f"{stat.S_IMODE(status.st_mode):04o}",
        "uid": status.st_uid, "owner": _name(pwd.getpwuid, status.st_uid),
        "gid": status.st_gid, "group": _name(grp.getgrgid, status.st_gid),
        "modified_at": status.st_mtime, "accessed_at": status.st_atime,
        "changed_at": status.st_ctime, "inode": status.st_ino, "device": status.st_dev,
        "links": status.st_nlink,
    }


def _name(lookup: Any, number: int) -> str | None:
    try:
        return str(lookup(number)[0])
    except KeyError:
        return None


def _refusal(path: str, refused: PathRefused) -> dict[str, Any]:
    return {"path": path, "error": refused.code, "message": str(refused)}
