"""Host, CPU, memory, disk and clock readings from psutil and the OS (scope ``diag.read``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import os
import platform
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import psutil

from agent.diag.params import ParamReader, Params
from agent.redact import redact_text

# psutil measures CPU use between two calls; the first call only starts the window, so it is
# made at load time and each diag.system reports the use since the previous reading.
psutil.cpu_percent(interval=None)
# Filesystems that describe no storage a customer would ask about.
PSEUDO_FILESYSTEMS = frozenset({
    "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts",
    "devtmpfs", "efivarfs", "fusectl", "hugetlbfs", "mqueue", "nsfs", "overlay", "proc",
    "pstore", "ramfs", "rpc_pipefs", "securityfs", "squashfs", "sysfs", "tmpfs", "tracefs",
})
MAX_FILESYSTEMS = 1000
# Block devices that are not disks: loop-mounted images and RAM disks.
PSEUDO_DISKS = ("loop", "ram")
# Unix times the engineer may pass as ``controller_time``: 2000-01-01 to 2100-01-01.
EARLIEST_TIME, LATEST_TIME = 946_684_800.0, 4_102_444_800.0


@dataclass(frozen=True)
class CpuQuery:
    """Validated parameters of ``diag.cpu``: seconds to measure use over."""

    interval: float = 0.5


@dataclass(frozen=True)
class ClockQuery:
    """Validated parameters of ``diag.clock``: the controller's Unix time, if sent."""

    controller_time: float | None = None


def parse_cpu(params: Params) -> CpuQuery:
    """``interval``: seconds from 0.1 to 5 (default 0.5)."""
    return CpuQuery(ParamReader("diag.cpu", params, {"interval"}).number("interval", 0.5, 0.1, 5))


def parse_clock(params: Params) -> ClockQuery:
    """``controller_time``: optional Unix time in seconds, between 2000 and 2100."""
    reader = ParamReader("diag.clock", params, {"controller_time"})
    return ClockQuery(reader.optional_number("controller_time", EARLIEST_TIME, LATEST_TIME))


def parse_none(name: str) -> Callable[[Params], None]:
    """A parser for an operation that takes no parameters."""
    def parse(params: Params) -> None:
        ParamReader(name, params, ())
    return parse


async def system() -> dict[str, Any]:
    """Host, OS, CPU, memory and swap figures, and who is logged in."""
    return await asyncio.to_thread(_system)


async def cpu(query: CpuQuery) -> dict[str, Any]:
    """Use per core over ``query.interval``, load, frequency and times since boot."""
    before = await asyncio.to_thread(_cpu_times)
    await asyncio.sleep(query.interval)  # on the loop, so that a revoke stops it at once
    return await asyncio.to_thread(_cpu, before, query)


async def memory() -> dict[str, Any]:
    """Memory and swap, in bytes."""
    return await asyncio.to_thread(_memory)


async def disks() -> dict[str, Any]:
    """Every mounted non-pseudo filesystem with usage and inodes; I/O counters per disk."""
    return await asyncio.to_thread(_disks)


async def clock(query: ClockQuery, *, now: Callable[[], float] = time.time) -> dict[str, Any]:
    """The agent's time, monotonic clock and timezone; the offset to ``controller_time``.

    ``offset_seconds`` is agent minus controller (positive: the agent is ahead). It
    includes the time the request took from the controller, so only offsets well above
    a second mean a wrong clock.
    """
    zone = await asyncio.to_thread(_timezone_name)
    at = now()
    local = time.localtime(at)
    return {
        "agent_time_at": at,
        "agent_time_utc": dt.datetime.fromtimestamp(at, dt.UTC).isoformat(),
        "monotonic_seconds": time.monotonic(),
        "timezone": zone, "timezone_abbreviation": local.tm_zone,
        "utc_offset_seconds": local.tm_gmtoff,
        "controller_time_at": query.controller_time,
        "offset_seconds": None if query.controller_time is None else at - query.controller_time,
    }


def _system() -> dict[str, Any]:
    uname = platform.uname()
    boot = psutil.boot_time()
    mem, swap = psutil.virtual_memory(), psutil.swap_memory()
    return {
        "hostname": socket.gethostname(),
        "os": uname.system, "platform": platform.platform(), "release": uname.release,
        "kernel": uname.version, "machine": uname.machine,
        "boot_time": boot, "uptime_seconds": max(0.0, time.time() - boot),
        "cpu": {"logical": psutil.cpu_count(logical=True),
                "physical": _physical_cores(),
                "percent": psutil.cpu_percent(interval=None),
                "load_average": load_average()},
        "memory": {"total": mem.total, "available": mem.available, "used": mem.used,
                   "percent": mem.percent},
        "swap": {"total": swap.total, "used": swap.used, "free": swap.free,
                 "percent": swap.percent},
        "users": [{"name": u.name, "terminal": u.terminal, "host": u.host,
                   "started_at": u.started} for u in psutil.users()],
    }


@functools.cache
def _physical_cores() -> int | None:
    # Read once: psutil walks the CPU topology in sysfs for it (a tenth of a millisecond
    # per call), and the cores a machine has do not change while the agent runs.
    return psutil.cpu_count(logical=False)


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages; None where the system keeps none."""
    try:
        return list(psutil.getloadavg())
    except (OSError, AttributeError):  # not kept here: unknown, which 0.0 would hide
        return None


def load_fields(load: list[float] | None) -> dict[str, float | None]:
    """The load averages as separate fields, each None if the system keeps none."""
    return {f"load_average_{minutes}m": load[i] if load is not None else None
            for i, minutes in enumerate((1, 5, 15))}


class _Times(NamedTuple):
    total: Any
    per_core: list[Any]


def _cpu_times() -> _Times:
    return _Times(psutil.cpu_times(), psutil.cpu_times(percpu=True))


def _busy_and_total(times: Any) -> tuple[float, float]:
    # As psutil counts: guest time is already in user time; idle includes iowait.
    fields = times._asdict()
    total = sum(fields.values()) - fields.get("guest", 0.0) - fields.get("guest_nice", 0.0)
    return total - fields["idle"] - fields.get("iowait", 0.0), total


def _percent(before: Any, after: Any) -> float:
    busy0, total0 = _busy_and_total(before)
    busy1, total1 = _busy_and_total(after)
    if total1 <= total0:
        return 0.0
    return round(min(100.0, max(0.0, 100.0 * (busy1 - busy0) / (total1 - total0))), 1)


def _cpu(before: _Times, query: CpuQuery) -> dict[str, Any]:
    after = _cpu_times()
    span = sum(after.total) - sum(before.total)
    freq = _try_os(lambda: psutil.cpu_freq(percpu=False))
    per_core_freq = _try_os(lambda: psutil.cpu_freq(percpu=True)) or []
    stats = psutil.cpu_stats()
    return {
        "interval_seconds": query.interval,
        "logical_count": psutil.cpu_count(logical=True),
        "physical_count": _physical_cores(),
        "percent": _percent(before.total, after.total),
        "per_core_percent": [_percent(b, a) for b, a in zip(before.per_core, after.per_core,
                                                             strict=False)],
        "times_percent": {f"{name}_percent": round(100.0 * (a - b) / span, 1) if span > 0
                          else 0.0 for (name, a), b in zip(after.total._asdict().items(),
                                                            before.total, strict=True)},
        "times": {f"{name}_seconds": value for name, value in after.total._asdict().items()},
        **load_fields(load_average()),
        # psutil says 0 for what the platform does not tell (limits in most VMs, the
        # count of system calls on Linux): sent as unknown, never as a reading of 0.
        "frequency": None if freq is None else {
            "current_mhz": freq.current, "min_mhz": freq.min or None,
            "max_mhz": freq.max or None},
        "per_core_frequency_mhz": [f.current for f in per_core_freq],
        "stats": {"context_switches": stats.ctx_switches, "interrupts": stats.interrupts,
                  "soft_interrupts": stats.soft_interrupts, "syscalls": stats.syscalls or None},
    }


def _try_os(read: Callable[[], Any]) -> Any:
    """A reading some hosts do not offer (no cpufreq in a VM), or None."""
    try:
        return read()
    except (OSError, NotImplementedError, AttributeError):
        return None


def _memory() -> dict[str, Any]:
    mem, swap = psutil.virtual_memory(), psutil.swap_memory()
    memory: dict[str, Any] = {f"{k}_bytes": v for k, v in mem._asdict().items() if k != "percent"}
    memory["percent"] = mem.percent
    return {"memory": memory,
            "swap": {"total_bytes": swap.total, "used_bytes": swap.used,
                     "free_bytes": swap.free, "percent": swap.percent,
                     "swapped_in_bytes": swap.sin, "swapped_out_bytes": swap.sout}}


def _disks() -> dict[str, Any]:
    found, redactions = [], 0
    for part in psutil.disk_partitions(all=False):
        if part.fstype in PSEUDO_FILESYSTEMS or not part.fstype:
            continue
        try:
            usage, inodes = psutil.disk_usage(part.mountpoint), os.statvfs(part.mountpoint)
        except OSError:
            continue  # unmounted or unreadable since listing
        options, hidden = redact_text(part.opts)  # e.g. cifs credentials in mount options
        redactions += hidden
        found.append({"device": part.device, "mountpoint": part.mountpoint,
                      "fstype": part.fstype, "options": options, "total_bytes": usage.total,
                      "used_bytes": usage.used, "free_bytes": usage.free,
                      "percent": usage.percent, **_inodes(inodes)})
    return {"filesystems": found[:MAX_FILESYSTEMS],
            "filesystems_truncated": len(found) > MAX_FILESYSTEMS,
            "io_counters": _disk_io()[:MAX_FILESYSTEMS], "redactions": redactions}


def _inodes(vfs: os.statvfs_result) -> dict[str, Any]:
    used = vfs.f_files - vfs.f_ffree
    return {"inodes_total": vfs.f_files, "inodes_used": used, "inodes_free": vfs.f_favail,
            # Some filesystems (btrfs) have no fixed inode table and report 0.
            "inodes_percent": round(100.0 * used / vfs.f_files, 1) if vfs.f_files else None}


def _disk_io() -> list[dict[str, Any]]:
    counters = _try_os(lambda: psutil.disk_io_counters(perdisk=True)) or {}
    return [{"disk": name, "reads": c.read_count, "writes": c.write_count,
             "read_bytes": c.read_bytes, "written_bytes": c.write_bytes,
             "read_time_seconds": c.read_time / 1000, "write_time_seconds": c.write_time / 1000,
             "busy_time_seconds": getattr(c, "busy_time", 0) / 1000}
            for name, c in sorted(counters.items()) if not name.startswith(PSEUDO_DISKS)]


def _timezone_name() -> str:
    """The zone's name (``Europe/Berlin``) where the OS tells it, else its abbreviation."""
    if os.environ.get("TZ"):
        return os.environ["TZ"]
    try:
        target = os.readlink("/etc/localtime")
    except OSError:
        target = ""
    if "zoneinfo/" in target:
        return target.split("zoneinfo/", 1)[1]
    try:
        with open("/etc/timezone", encoding="utf-8") as f:
            name = f.read(256).strip()
    except OSError:
        name = ""
    return name or time.tzname[0]
