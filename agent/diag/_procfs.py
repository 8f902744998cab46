"""The process table read straight from ``/proc`` (Linux): one small read per process.

psutil reads each attribute through its own call and file; over hundreds of processes
that costs several times what ``ps aux`` does. Here one read of ``/proc/<pid>/stat``
gives what sorting by CPU and most filters need (state, parent, CPU ticks, threads, start
time); the resident size (``statm``: the RSS in ``stat`` is an approximate per-CPU
counter on recent kernels), the command line and the real uid (``status``) are read
only for the processes that are shown, sorted or filtered on them. Values are computed from the same
sources with the same arithmetic as psutil, so both paths agree.

A process that exits while it is read is left out (:func:`read_stat` returns None).
"""

from __future__ import annotations

import os
import pwd
import sys
from dataclasses import dataclass

PROC = "/proc"
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_ERRORS = sys.getfilesystemencodeerrors()  # as psutil decodes names and command lines
# Gone (exited, or exiting while read: ESRCH), or hidden from us (hidepid): not shown.
_GONE = (FileNotFoundError, ProcessLookupError, PermissionError)
# The state letters of /proc/<pid>/stat, named as psutil names them.
STATUSES = {"R": "running", "S": "sleeping", "D": "disk-sleep", "T": "stopped",
            "t": "tracing-stop", "Z": "zombie", "X": "dead", "x": "dead", "K": "wake-kill",
            "W": "waking", "I": "idle", "P": "parked"}
COMM_LENGTH = 15  # the kernel cuts the name in stat to this many characters


@dataclass(frozen=True)
class Stat:
    """The fields of one ``/proc/<pid>/stat`` that the listing uses (times in ticks)."""

    pid: int
    comm: str
    state: str
    ppid: int
    cpu_ticks: int  # utime + stime
    threads: int
    start_ticks: int


def read_stat(pid: int, proc: str = PROC) -> Stat | None:
    """The stat line of ``pid``, or None if the process is gone."""
    data = _read(f"{proc}/{pid}/stat", 4096)
    if not data:
        return None
    # The name may hold spaces and parentheses: it ends at the last ")".
    close = data.rfind(b")")
    fields = data[close + 2:].split()
    return Stat(pid=pid, comm=data[data.find(b"(") + 1:close].decode(errors=_ERRORS),
                state=fields[0].decode(), ppid=int(fields[1]),
                cpu_ticks=int(fields[11]) + int(fields[12]), threads=int(fields[17]),
                start_ticks=int(fields[19]))


def pids(proc: str = PROC) -> list[int]:
    """Every process id, ascending."""
    return sorted(int(name) for name in os.listdir(proc) if name.isdigit())


def sample(proc: str = PROC) -> dict[int, Stat]:
    """The stat of every process that still exists once its turn to be read comes."""
    return {pid: stat for pid in pids(proc) if (stat := read_stat(pid, proc)) is not None}


def cpu_percent(before: Stat, after: Stat, seconds: float) -> float:
    """CPU use between two samples, 100 per busy core, rounded as psutil rounds it."""
    if seconds <= 0:
        return 0.0
    return round((after.cpu_ticks - before.cpu_ticks) / TICKS / seconds * 100, 1)


def cmdline(pid: int, proc: str = PROC) -> list[str] | None:
    """The arguments of ``pid`` (``[]`` for kernel threads and zombies); None if gone
    or unreadable.

    Split as psutil splits them: on NUL, or on spaces where a process rewrote its
    command line without NULs (setproctitle).
    """
    data = _read(f"{proc}/{pid}/cmdline", None)
    if data is None:
        return None
    text = data.decode(errors=_ERRORS)
    if not text:
        return []
    sep = "\x00" if text.endswith("\x00") else " "
    text = text.removesuffix(sep)
    args = text.split(sep)
    if sep == "\x00" and len(args) == 1 and " " in text:
        args = text.split(" ")
    return args


def full_name(comm: str, args: list[str]) -> str:
    """A name cut by the kernel, completed from the command line where it begins it."""
    if len(comm) >= COMM_LENGTH and args:
        extended = os.path.basename(args[0])
        if extended.startswith(comm):
            return extended
    return comm


def rss_bytes(pid: int, proc: str = PROC) -> int | None:
    """The resident set size of ``pid`` (``statm``, as psutil and ps give it); None if gone."""
    data = _read(f"{proc}/{pid}/statm", 4096)
    return int(data.split()[1]) * PAGE_SIZE if data else None


def real_uid(pid: int, proc: str = PROC) -> int | None:
    """The real uid of ``pid`` from its status file; None if gone."""
    data = _read(f"{proc}/{pid}/status", None)
    if data is None:
        return None
    for line in data.split(b"\n"):
        if line.startswith(b"Uid:"):
            return int(line.split()[1])
    return None


class UserNames:
    """uid -> user name, each uid looked up once (an unknown uid is shown as its number)."""

    def __init__(self) -> None:
        self._names: dict[int, str] = {}

    def name(self, uid: int) -> str:
        if uid not in self._names:
            try:
                self._names[uid] = pwd.getpwuid(uid).pw_name
            except KeyError:
                self._names[uid] = str(uid)
        return self._names[uid]


def boot_time(proc: str = PROC) -> float:
    """Seconds since the epoch at boot (``btime`` of /proc/stat)."""
    with open(f"{proc}/stat", "rb") as f:
        for line in f:
            if line.startswith(b"btime"):
                return float(line.split()[1])
    raise RuntimeError(f"no btime line in {proc}/stat")


def memory_total(proc: str = PROC) -> int:
    """Physical memory in bytes (``MemTotal`` of /proc/meminfo)."""
    with open(f"{proc}/meminfo", "rb") as f:
        for line in f:
            if line.startswith(b"MemTotal:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no MemTotal line in {proc}/meminfo")


def _read(path: str, size: int | None) -> bytes | None:
    """The file's bytes (up to ``size`` when given); None if gone or unreadable."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except _GONE:
        return None
    try:
        if size is not None:
            return os.read(fd, size)
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    except _GONE:
        return None
    finally:
        os.close(fd)
