"""Read-only diagnostics of the host, from psutil.

psutil blocks, so every collection runs in a worker thread via ``asyncio.to_thread``;
waiting (CPU sampling) happens on the event loop so that cancelling an operation
stops it at once instead of leaving a thread asleep.
"""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil

from agent.redact import redact_args

MAX_COMMAND_LINE = 1024

# psutil measures CPU use between two calls; the first call only starts the window, so it is
# made at load time and each diag.system reports the use since the previous reading.
psutil.cpu_percent(interval=None)
# Filesystems that describe no storage a customer would ask about.
PSEUDO_FILESYSTEMS = frozenset({
    "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts",
    "devtmpfs", "efivarfs", "fusectl", "hugetlbfs", "mqueue", "nsfs", "overlay", "proc",
    "pstore", "ramfs", "rpc_pipefs", "securityfs", "squashfs", "sysfs", "tmpfs", "tracefs",
})


@dataclass(frozen=True)
class ProcessQuery:
    """Validated parameters of ``diag.processes``."""

    by: str = "cpu"
    limit: int = 10
    interval: float = 0.5


async def system() -> dict[str, Any]:
    """Host, OS, CPU, memory and swap figures."""
    return await asyncio.to_thread(_system)


async def disks() -> dict[str, Any]:
    """Usage of every mounted non-pseudo filesystem."""
    return await asyncio.to_thread(_disks)


async def processes(query: ProcessQuery) -> dict[str, Any]:
    """The top ``query.limit`` processes by CPU or memory, command lines redacted."""
    procs = await asyncio.to_thread(_prime_cpu)
    if query.interval > 0:
        await asyncio.sleep(query.interval)
    return await asyncio.to_thread(_top_processes, procs, query)


def _system() -> dict[str, Any]:
    uname = platform.uname()
    boot = psutil.boot_time()
    memory = psutil.virtual_memory()
    swap = psutil.swap_memory()
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "hostname": socket.gethostname(),
        "os": uname.system, "platform": platform.platform(), "release": uname.release,
        "kernel": uname.version, "machine": uname.machine,
        "boot_time": boot, "uptime_seconds": max(0.0, time.time() - boot),
        "cpu": {"logical": psutil.cpu_count(logical=True),
                "physical": psutil.cpu_count(logical=False),
                "percent": psutil.cpu_percent(interval=None),
                "load_average": list(load)},
        "memory": {"total": memory.total, "available": memory.available, "used": memory.used,
                   "percent": memory.percent},
        "swap": {"total": swap.total, "used": swap.used, "free": swap.free,
                 "percent": swap.percent},
    }


def _disks() -> dict[str, Any]:
    found = []
    for part in psutil.disk_partitions(all=False):
        if part.fstype in PSEUDO_FILESYSTEMS or not part.fstype:
            continue
        try:
            usage = psutil.disk_usage(part.mountpoint)
        except OSError:
            continue  # unmounted or unreadable since listing
        found.append({"device": part.device, "mountpoint": part.mountpoint,
                      "fstype": part.fstype, "total": usage.total, "used": usage.used,
                      "free": usage.free, "percent": usage.percent})
    return {"filesystems": found}


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


def _top_processes(procs: list[psutil.Process], query: ProcessQuery) -> dict[str, Any]:
    rows = [row for row in map(_describe, procs) if row is not None]
    key = "cpu_percent" if query.by == "cpu" else "memory_rss"
    rows.sort(key=lambda row: (row[key] or 0, -row["pid"]), reverse=True)
    top = rows[:query.limit]
    return {"by": query.by, "interval": query.interval, "total_processes": len(rows),
            "processes": top, "redactions": sum(row.pop("_redactions") for row in top)}


def _describe(proc: psutil.Process) -> dict[str, Any] | None:
    try:
        with proc.oneshot():
            cmdline = redact_args(_try(proc.cmdline, []))
            memory = _try(proc.memory_info, None)
            return {
                "pid": proc.pid, "name": _try(proc.name, ""),
                "user": _try(proc.username, None),
                "cpu_percent": _try(lambda: proc.cpu_percent(interval=None), None),
                "memory_rss": memory.rss if memory is not None else None,
                "memory_percent": _try(proc.memory_percent, None),
                "status": _try(proc.status, None),
                "cmdline": cmdline.text[:MAX_COMMAND_LINE],
                "_redactions": cmdline.redactions,
            }
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None  # exited since it was listed


def _try(read: Callable[[], Any], default: Any) -> Any:
    """A process attribute, or ``default`` where the OS denies reading it."""
    try:
        return read()
    except psutil.AccessDenied:
        return default
