"""Processes: a filtered top list and one process in detail (scope ``diag.read``).

Command lines are redacted (:func:`agent.redact.redact_command`); environments are never
sent: only the names of the variables, and how many values were withheld.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil

from agent.diag.params import ParamReader, Params
from agent.redact import redact_command

MAX_COMMAND_LINE = 1024
MAX_THREADS_SHOWN = 50
MAX_ENV_NAMES = 500
MAX_PID = 2**31 - 1
# Variable names shown as they are; any other name (bytes, spaces...) is withheld too.
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


@dataclass(frozen=True)
class ProcessQuery:
    """Validated parameters of ``diag.processes``."""

    by: str = "cpu"
    limit: int = 10
    interval: float = 0.5
    name: str | None = None
    user: str | None = None
    min_cpu_percent: float = 0.0
    min_memory_percent: float = 0.0

    def admits(self, row: dict[str, Any]) -> bool:
        return ((self.name is None or self.name.lower() in row["name"].lower())
                and (self.user is None or row["user"] == self.user)
                and (row["cpu_percent"] or 0.0) >= self.min_cpu_percent
                and (row["memory_percent"] or 0.0) >= self.min_memory_percent)


@dataclass(frozen=True)
class ProcessDetailQuery:
    """Validated parameters of ``diag.process``."""

    pid: int


def parse_processes(params: Params) -> ProcessQuery:
    """``by`` cpu|memory, ``limit`` 1..100, ``interval`` seconds 0..10, and filters:
    ``name`` (substring, any case), ``user`` (exact), ``min_cpu_percent`` (a process
    may use more than one core: up to 100 per core), ``min_memory_percent`` 0..100.
    """
    reader = ParamReader("diag.processes", params, {
        "by", "limit", "interval", "name", "user", "min_cpu_percent", "min_memory_percent"})
    return ProcessQuery(
        by=reader.choice("by", "cpu", ("cpu", "memory")),
        limit=reader.integer("limit", 10, 1, 100),
        interval=reader.number("interval", 0.5, 0, 10),
        name=reader.optional_text("name", max_length=256),
        user=reader.optional_text("user", max_length=256),
        min_cpu_percent=reader.number("min_cpu_percent", 0.0, 0, 100 * 4096),
        min_memory_percent=reader.number("min_memory_percent", 0.0, 0, 100))


def parse_process(params: Params) -> ProcessDetailQuery:
    """``pid``: the process to describe (required)."""
    return ProcessDetailQuery(ParamReader("diag.process", params, {"pid"})
                              .integer("pid", None, 1, MAX_PID))


async def processes(query: ProcessQuery) -> dict[str, Any]:
    """The top ``query.limit`` matching processes by CPU or memory, command lines redacted."""
    procs = await asyncio.to_thread(_prime_cpu)
    if query.interval > 0:
        await asyncio.sleep(query.interval)  # on the loop, so that a revoke stops it at once
    return await asyncio.to_thread(_top, procs, query)


async def process(query: ProcessDetailQuery) -> dict[str, Any]:
    """One process in detail; ``{"pid": n, "exists": false}`` if there is none."""
    return await asyncio.to_thread(_detail, query.pid)


def _prime_cpu() -> list[psutil.Process]:
    """All processes, with CPU accounting started so a later reading covers the interval."""
    procs = []
    for proc in psutil.process_iter():
        try:
            proc.cpu_percent(interval=None)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        except psutil.AccessDenied:
            pass
        procs.append(proc)
    return procs


def _top(procs: list[psutil.Process], query: ProcessQuery) -> dict[str, Any]:
    rows = [row for row in map(_summary, procs) if row is not None]
    matched = [row for row in rows if query.admits(row)]
    key = "cpu_percent" if query.by == "cpu" else "memory_rss_bytes"
    matched.sort(key=lambda row: (row[key] or 0, -row["pid"]), reverse=True)
    top = matched[:query.limit]
    redactions = 0
    for row in top:  # command lines of the shown rows only: the costly part
        command = redact_command(_cmdline(row.pop("_proc")))
        row["cmdline"] = command.text[:MAX_COMMAND_LINE]
        redactions += command.redactions
    return {"by": query.by, "interval_seconds": query.interval, "total_processes": len(rows),
            "matched_processes": len(matched), "processes": top, "redactions": redactions}


def _summary(proc: psutil.Process) -> dict[str, Any] | None:
    try:
        with proc.oneshot():
            memory = _try(proc.memory_info, None)
            return {
                "pid": proc.pid, "ppid": _try(proc.ppid, None), "name": _try(proc.name, ""),
                "user": _try(proc.username, None),
                "cpu_percent": _try(lambda: proc.cpu_percent(interval=None), None),
                "memory_rss_bytes": memory.rss if memory is not None else None,
                "memory_percent": _try(proc.memory_percent, None),
                "status": _try(proc.status, None), "threads": _try(proc.num_threads, None),
                "started_at": _try(proc.create_time, None), "_proc": proc,
            }
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None  # exited since it was listed


def _detail(pid: int) -> dict[str, Any]:
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            return {"pid": pid, "exists": True, **_identity(proc), **_resources(proc),
                    **_command(proc)}
    except psutil.NoSuchProcess:  # also a zombie's vanished details
        return {"pid": pid, "exists": False}


def _identity(proc: psutil.Process) -> dict[str, Any]:
    return {"ppid": _try(proc.ppid, None), "name": _try(proc.name, ""),
            "exe": _try(proc.exe, None), "cwd": _try(proc.cwd, None),
            "user": _try(proc.username, None), "status": _try(proc.status, None),
            "started_at": _try(proc.create_time, None), "nice": _try(proc.nice, None)}


def _resources(proc: psutil.Process) -> dict[str, Any]:
    memory = _try(proc.memory_info, None)
    times = _try(proc.cpu_times, None)
    threads = _try(proc.threads, None)
    open_files = _try(proc.open_files, None)
    connections = _try(lambda: proc.net_connections(kind="inet"), None)
    return {
        "memory": None if memory is None else {
            f"{name}_bytes": value for name, value in memory._asdict().items()},
        "memory_percent": _try(proc.memory_percent, None),
        "cpu_times": None if times is None else {
            f"{name}_seconds": value for name, value in times._asdict().items()},
        "num_threads": _try(proc.num_threads, None),
        "threads": None if threads is None else [
            {"id": t.id, "user_seconds": t.user_time, "system_seconds": t.system_time}
            for t in sorted(threads, key=lambda t: -(t.user_time + t.system_time))
        ][:MAX_THREADS_SHOWN],
        "open_files_count": None if open_files is None else len(open_files),
        "fds_count": _try(proc.num_fds, None) if hasattr(proc, "num_fds") else None,
        "connections_count": None if connections is None else len(connections),
        "connections_by_state": None if connections is None else dict(
            sorted(Counter(c.status for c in connections).items())),
    }


def _command(proc: psutil.Process) -> dict[str, Any]:
    command = redact_command(_try(proc.cmdline, []))
    environ = _try(proc.environ, None)
    names = None if environ is None else sorted(n for n in environ if _ENV_NAME.fullmatch(n))
    return {
        "cmdline": command.text[:MAX_COMMAND_LINE],
        "redactions": command.redactions,
        # Names only: values never leave the host, whatever they look like.
        "environment_keys": None if names is None else names[:MAX_ENV_NAMES],
        "environment_keys_truncated": names is not None and len(names) > MAX_ENV_NAMES,
        "environment_values_withheld": 0 if environ is None else len(environ),
    }


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return _try(proc.cmdline, [])  # type: ignore[no-any-return]
    except psutil.NoSuchProcess:
        return []  # exited since it was measured


def _try(read: Callable[[], Any], default: Any) -> Any:
    """A process attribute, or ``default`` where the OS denies reading it."""
    try:
        return read()
    except (psutil.AccessDenied, psutil.ZombieProcess):
        return default
