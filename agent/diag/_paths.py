"""Opening customer files without being led anywhere the customer did not allowlist.

A path is resolved with ``os.path.realpath`` and must lie under an allowlisted root
(when roots apply); it is then opened without following a final symbolic link and
without any effect on what it names: on Linux with ``O_PATH`` (no read, no blocking on a
FIFO, no device open), and the file actually opened is checked again through
``/proc/self/fd`` before it is reopened for reading. Anything but a regular file (or a
directory, where asked) is refused. Refusals are :class:`PathRefused`, whose ``code``
is what the result shows.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

_O_PATH = getattr(os, "O_PATH", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_PROC_FD = "/proc/self/fd"


class PathRefused(Exception):
    """The path cannot be used; ``code`` names why in a word or two."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Opened:
    """An opened file: ``fd`` (readable if asked), its real path and its status."""

    fd: int
    real_path: str
    status: os.stat_result


def inside(path: str, root: str) -> bool:
    """Whether normalized absolute ``path`` is ``root`` or below it."""
    return path == root or path.startswith(root.rstrip("/") + "/")


def under_roots(path: str, roots: Sequence[str]) -> str:
    """The real path of ``path``; PathRefused unless it is under a root's real path."""
    real = os.path.realpath(path)
    if not any(inside(real, os.path.realpath(root)) for root in roots):
        raise PathRefused("outside-allowlist", "the path resolves outside the allowlisted roots")
    return real


@contextlib.contextmanager
def open_checked(path: str, *, roots: Sequence[str] | None, read: bool,
                 directories: bool = False) -> Iterator[Opened]:
    """``path`` opened safely (see the module docstring); closed on exit.

    With ``roots``, ``path`` is resolved and must stay under them; without, ``path``
    itself is opened and must not be a symbolic link. ``read`` makes ``fd`` readable.
    """
    real = under_roots(path, roots) if roots is not None else path
    fd = _open_no_follow(real)
    try:
        status = os.fstat(fd)
        _check_kind(status, directories=directories, read=read)
        if roots is not None:
            _check_opened(fd, roots)
        if read and _O_PATH:
            readable = os.open(f"{_PROC_FD}/{fd}", os.O_RDONLY | os.O_CLOEXEC)
            os.close(fd)
            fd = readable
            if not os.path.samestat(os.fstat(fd), status):
                raise PathRefused("changed", "the file changed while it was opened")
        yield Opened(fd, real, status)
    finally:
        os.close(fd)


def _open_no_follow(path: str) -> int:
    flags = os.O_CLOEXEC | _O_NOFOLLOW
    if _O_PATH:
        flags |= _O_PATH
    else:  # no O_PATH: never open what is not a regular file or directory
        _check_kind(os.lstat(path), directories=True, read=False)
        flags |= os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0)
    try:
        return os.open(path, flags)
    except FileNotFoundError as exc:
        raise PathRefused("not-found", "no such file") from exc
    except PermissionError as exc:
        raise PathRefused("permission-denied", "the agent may not open it") from exc
    except OSError as exc:  # ELOOP: a symbolic link where O_NOFOLLOW forbids one
        raise PathRefused("symlink", "the file is a symbolic link") from exc


def _check_kind(status: os.stat_result, *, directories: bool, read: bool) -> None:
    mode = status.st_mode
    if stat.S_ISLNK(mode):
        raise PathRefused("symlink", "the file is a symbolic link")
    if stat.S_ISDIR(mode):
        if directories and not read:
            return
        raise PathRefused("is-directory", "the path is a directory")
    if not stat.S_ISREG(mode):
        raise PathRefused("special-file", "not a regular file (device, FIFO or socket)")


def _check_opened(fd: int, roots: Sequence[str]) -> None:
    """The file really opened lies under a root (a directory may have been swapped)."""
    try:
        actual = os.readlink(f"{_PROC_FD}/{fd}")
    except OSError:
        return  # no /proc: the realpath check stands alone
    if not any(inside(actual, os.path.realpath(root)) for root in roots):
        raise PathRefused("outside-allowlist", "the path resolves outside the allowlisted roots")
