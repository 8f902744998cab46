"""Processes: a filtered top list and one process in detail (scope ``diag.read``).

Command lines are redacted (:func:`agent.redact.redact_command`, with the customer's
``redact_patterns``); environments are never sent: only the names of the variables
(a name that a customer pattern matches is withheld too), and how many values were
withheld. With customer patterns configured, results also hold
``redactions_by_pattern``: of ``redactions``, how many each pattern hid.

On Linux the list is read from ``/proc`` directly (:mod:`agent.diag._procfs`), elsewhere
through psutil; both give the same fields from the same sources.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil

from agent.diag import _procfs
from agent.diag.params import ParamReader, Params
from agent.diag.policy import DiagConfig
from agent.redact import Redacted, redact_command
from agent.redact_custom import NO_PATTERNS, CustomRedaction

MAX_COMMAND_LINE = 1024
MAX_THREADS_SHOWN = 50
MAX_ENV_NAMES = 500
MAX_PID = 2**31 - 1
# Variable names shown as they are; any other name (bytes, spaces...) is withheld too.
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_PROCFS = sys.platform.startswith("linux")
Clock = Callable[[], float]


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
    custom: CustomRedaction = NO_PATTERNS

    def admits(self, row: dict[str, Any]) -> bool:
        return ((self.name is None or self.name.lower() in row["name"].lower())
                and (self.user is None or row["user"] == self.user)
                and (row["cpu_percent"] or 0.0) >= self.min_cpu_percent
                and (row["memory_percent"] or 0.0) >= self.min_memory_percent)


@dataclass(frozen=True)
class ProcessDetailQuery:
    """Validated parameters of ``diag.process``."""

    pid: int
    custom: CustomRedaction = NO_PATTERNS


def parse_processes(params: Params, diag: DiagConfig | None = None) -> ProcessQuery:
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
        min_memory_percent=reader.number("min_memory_percent", 0.0, 0, 100),
        custom=_custom(diag))


def parse_process(params: Params, diag: DiagConfig | None = None) -> ProcessDetailQuery:
    """``pid``: the process to describe (required)."""
    return ProcessDetailQuery(ParamReader("diag.process", params, {"pid"})
                              .integer("pid", None, 1, MAX_PID), _custom(diag))


def _custom(diag: DiagConfig | None) -> CustomRedaction:
    return NO_PATTERNS if diag is None else diag.redact_patterns


async def processes(query: ProcessQuery) -> dict[str, Any]:
    """The top ``query.limit`` matching processes by CPU or memory, command lines redacted."""
    if not _PROCFS:
        procs = await asyncio.to_thread(_prime_cpu)
        await _wait(query.interval)
        return await asyncio.to_thread(_top, procs, query)
    started, first = await asyncio.to_thread(_procfs_sample)
    await _wait(query.interval)
    return await asyncio.to_thread(_top_procfs, started, first, query)


async def _wait(interval: float) -> None:
    if interval > 0:
        await asyncio.sleep(interval)  # on the loop, so that a revoke stops it at once


async def process(query: ProcessDetailQuery) -> dict[str, Any]:
    """One process in detail; ``{"pid": n, "exists": false}`` if there is none."""
    return await asyncio.to_thread(_detail, query.pid, query.custom)


# -- the list from /proc (Linux) ----------------------------------------------------------

def _procfs_sample(clock: Clock = time.monotonic) -> tuple[float, dict[int, _procfs.Stat]]:
    """The first CPU sample: when, and every process's stat."""
    return clock(), _procfs.sample()


def _top_procfs(started: float, first: dict[int, _procfs.Stat], query: ProcessQuery,
                clock: Clock = time.monotonic) -> dict[str, Any]:
    """As :func:`_top`, from a second sample of the processes of the first."""
    second = {pid: stat for pid, before in first.items()
              if (stat := _procfs.read_stat(pid)) is not None
              and stat.start_ticks == before.start_ticks}  # not a new process on an old pid
    seconds = clock() - started
    table = _ProcTable(_procfs.boot_time(), _procfs.memory_total())
    rows = [table.row(stat, _procfs.cpu_percent(first[pid], stat, seconds))
            for pid, stat in second.items()]
    for needed, complete in ((query.by == "memory" or query.min_memory_percent > 0,
                              table.complete_memory),
                             (query.name is not None, table.complete_name),
                             (query.user is not None, table.complete_user)):
        if needed:
            for row in rows:
                complete(row)
    return _shown(rows, query, table.complete)


class _ProcTable:
    """Rows from stat lines; the name, user and command line read only where needed."""

    def __init__(self, boot_time: float, memory_total: int) -> None:
        self._boot_time = boot_time
        self._memory_total = memory_total
        self._users = _procfs.UserNames()
        self._cmdlines: dict[int, list[str]] = {}

    def row(self, stat: _procfs.Stat, cpu_percent: float) -> dict[str, Any]:
        return {"pid": stat.pid, "ppid": stat.ppid, "name": stat.comm, "user": None,
                "cpu_percent": cpu_percent, "memory_rss_bytes": None, "memory_percent": None,
                "status": _procfs.STATUSES.get(stat.state, stat.state),
                "threads": stat.threads,
                "started_at": stat.start_ticks / _procfs.TICKS + self._boot_time,
                "_done": set()}

    def command(self, row: dict[str, Any]) -> list[str]:
        pid = row["pid"]
        if pid not in self._cmdlines:
            self._cmdlines[pid] = _procfs.cmdline(pid) or []  # exited since: nothing to show
        return self._cmdlines[pid]

    def complete_memory(self, row: dict[str, Any]) -> None:
        if "memory" not in row["_done"]:
            rss = _procfs.rss_bytes(row["pid"])  # None: exited since, as psutil would say
            row["memory_rss_bytes"] = rss
            row["memory_percent"] = None if rss is None else rss / self._memory_total * 100
        row["_done"].add("memory")

    def complete_name(self, row: dict[str, Any]) -> None:
        if "name" not in row["_done"] and len(row["name"]) >= _procfs.COMM_LENGTH:
            row["name"] = _procfs.full_name(row["name"], self.command(row))
        row["_done"].add("name")

    def complete_user(self, row: dict[str, Any]) -> None:
        if "user" not in row["_done"]:
            uid = _procfs.real_uid(row["pid"])
            row["user"] = None if uid is None else self._users.name(uid)
        row["_done"].add("user")

    def complete(self, row: dict[str, Any]) -> list[str]:
        """Fill in the row to be shown; its command line."""
        self.complete_memory(row)
        self.complete_name(row)
        self.complete_user(row)
        del row["_done"]
        return self.command(row)


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


# -- the list through psutil (elsewhere) ---------------------------------------------------

def _top(procs: list[psutil.Process], query: ProcessQuery) -> dict[str, Any]:
    rows = [row for row in map(_summary, procs) if row is not None]
    return _shown(rows, query, lambda row: _cmdline(row.pop("_proc")))


def _shown(rows: list[dict[str, Any]], query: ProcessQuery,
           complete: Callable[[dict[str, Any]], list[str]]) -> dict[str, Any]:
    """The result: ``rows`` filtered, sorted and cut, ``complete`` giving each shown
    row's missing fields and its command line (the costly part, for these rows only)."""
    matched = [row for row in rows if query.admits(row)]
    key = "cpu_percent" if query.by == "cpu" else "memory_rss_bytes"
    matched.sort(key=lambda row: (row[key] or 0, -row["pid"]), reverse=True)
    top = matched[:query.limit]
    commands = [redact_command(complete(row), query.custom) for row in top]
    for row, command in zip(top, commands, strict=True):
        row["cmdline"] = command.text[:MAX_COMMAND_LINE]
    return {"by": query.by, "interval_seconds": query.interval, "total_processes": len(rows),
            "matched_processes": len(matched), "processes": top,
            **_counts(commands, query.custom)}


def _counts(commands: list[Redacted], custom: CustomRedaction) -> dict[str, Any]:
    """``redactions``, and by pattern when the customer configured patterns."""
    counts: dict[str, Any] = {"redactions": sum(c.redactions for c in commands)}
    if custom:
        counts["redactions_by_pattern"] = custom.report(
            sum((c.custom_counts for c in commands), Counter[str]()))
    return counts


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


def _detail(pid: int, custom: CustomRedaction) -> dict[str, Any]:
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            return {"pid": pid, "exists": True, **_identity(proc), **_resources(proc),
                    **_command(proc, custom)}
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


def _command(proc: psutil.Process, custom: CustomRedaction) -> dict[str, Any]:
    command = redact_command(_try(proc.cmdline, []), custom)
    environ = _try(proc.environ, None)
    names = None if environ is None else sorted(n for n in environ if _ENV_NAME.fullmatch(n))
    if names is not None and custom:
        names, hidden = _env_names(names, custom)
        command = Redacted(command.args, command.redactions + hidden.total(),
                           command.custom_counts + hidden)
    return {
        "cmdline": command.text[:MAX_COMMAND_LINE],
        **_counts([command], custom),
        # Names only: values never leave the host, whatever they look like.
        "environment_keys": None if names is None else names[:MAX_ENV_NAMES],
        "environment_keys_truncated": names is not None and len(names) > MAX_ENV_NAMES,
        "environment_values_withheld": 0 if environ is None else len(environ),
    }


def _env_names(names: list[str], custom: CustomRedaction) -> tuple[list[str], Counter[str]]:
    """The names no customer pattern matches, and the count of those withheld."""
    counts: Counter[str] = Counter()
    shown = [name for name in names if custom.apply(name, "", counts) == name]
    return shown, counts


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
