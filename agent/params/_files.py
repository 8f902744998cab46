"""Reading a parameter file safely, and replacing it atomically with its mode and owner.

Reading opens the configured path without following a symbolic link, refuses anything
but a regular file and anything larger than the file's ``max_bytes``, and decodes
UTF-8 strictly. Replacing writes a temporary file beside the original (same mode and
owner), fsyncs it, renames it over the original and fsyncs the directory: a crash at
any point leaves the old content or the new, never a mixture.

``RMAINT_PARAMS_CRASH_AT`` names a point at which the process kills itself with
SIGKILL. It is a seam for the crash tests and does nothing when unset. Points:
``apply:backup-saved``, ``apply:after-rendered``, ``apply:validation-failed`` and, for
each replace (``apply``, ``restore``, ``undo``), ``<label>:temp-written``,
``<label>:temp-synced``, ``<label>:renamed``, ``<label>:directory-synced``.
"""

from __future__ import annotations

import glob
import hashlib
import os
import secrets
import signal
from dataclasses import dataclass

from agent.diag._paths import PathRefused, open_checked
from agent.params.errors import FileRefused
from agent.params.policy import ParamFile

CRASH_ENV = "RMAINT_PARAMS_CRASH_AT"
_TEMP_MARK = ".rmaint-"


@dataclass(frozen=True)
class Content:
    """A file's bytes, their text and sha256, and its status when read."""

    data: bytes
    text: str
    sha256: str
    status: os.stat_result


def crash_point(name: str) -> None:
    """Die here with SIGKILL if the crash tests asked for this point."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read(file: ParamFile) -> Content:
    """The file's content; FileRefused if it is not a small regular UTF-8 file."""
    try:
        with open_checked(file.path, roots=None, read=True) as opened:
            if opened.status.st_size > file.max_bytes:
                raise FileRefused("too-large", f"{file.name}: the file is larger than "
                                  f"{file.max_bytes} bytes")
            data = _read_at_most(opened.fd, file.max_bytes + 1)
            status = opened.status
    except PathRefused as exc:
        raise FileRefused(exc.code, f"{file.name}: {exc}") from exc
    if len(data) > file.max_bytes:
        raise FileRefused("too-large", f"{file.name}: the file grew beyond {file.max_bytes} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileRefused("not-utf8", f"{file.name}: the file is not UTF-8 text") from exc
    return Content(data, text, sha256(data), status)


def replace(path: str, data: bytes, like: os.stat_result, *, label: str) -> None:
    """Atomically make ``path`` hold ``data``, with the mode and owner of ``like``."""
    directory, base = os.path.split(path)
    temp = os.path.join(directory, f".{base}{_TEMP_MARK}{secrets.token_hex(6)}.tmp")
    try:
        _write_temp(temp, data, like, label)
        os.replace(temp, path)
    except PermissionError as exc:
        _discard(temp)
        raise FileRefused("permission-denied", "the agent may not write the file or keep its "
                          "owner") from exc
    except BaseException:
        _discard(temp)
        raise
    crash_point(f"{label}:renamed")
    _fsync_directory(directory)
    crash_point(f"{label}:directory-synced")


def sweep_temporaries(path: str) -> None:
    """Remove temporary files a crashed replace of ``path`` left behind."""
    directory, base = os.path.split(path)
    for leftover in glob.glob(os.path.join(glob.escape(directory),
                                           f".{glob.escape(base)}{_TEMP_MARK}*.tmp")):
        _discard(leftover)


def _write_temp(temp: str, data: bytes, like: os.stat_result, label: str) -> None:
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW,
                 0o600)
    try:
        if (like.st_uid, like.st_gid) != (os.geteuid(), os.getegid()):
            os.fchown(fd, like.st_uid, like.st_gid)
        os.fchmod(fd, like.st_mode & 0o7777)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        crash_point(f"{label}:temp-written")
        os.fsync(fd)
        crash_point(f"{label}:temp-synced")
    finally:
        os.close(fd)


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks, total = [], 0
    while total < limit:
        chunk = os.read(fd, min(1 << 16, limit - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _discard(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
