"""diag.processes read from /proc: the values of ps and psutil, vanished processes skipped."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from agent.catalogue import CATALOGUE
from agent.diag import _procfs, processes

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

LONG_NAME = "rmlisting-child-with-a-long-name"  # longer than the kernel's 15 characters
# Holds ``size`` MiB, starts two idle threads, then waits on stdin (or spins when "busy").
CHILD = """
import sys, threading
held = bytearray(int(sys.argv[1]) << 20)
stop = threading.Event()
for _ in range(2):
    threading.Thread(target=stop.wait, daemon=True).start()
print("ready", flush=True)
if sys.argv[2] == "busy":
    while True:
        pass
sys.stdin.read()
"""
Spawn = Callable[..., subprocess.Popen[str]]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Starts children named ``name`` (a link to the interpreter) that hold ``size`` MiB."""
    started: list[subprocess.Popen[str]] = []

    def make(name: str = LONG_NAME, size: int = 1, mode: str = "idle") -> subprocess.Popen[str]:
        link = tmp_path / name
        if not link.exists():
            link.symlink_to(sys.executable)
        proc = subprocess.Popen([str(link), "-c", CHILD, str(size), mode, "--role=listing"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        started.append(proc)
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        return proc

    yield make
    for proc in started:
        proc.kill()
        proc.communicate(timeout=5)


async def listing(params: dict[str, Any]) -> dict[str, Any]:
    result = await CATALOGUE["diag.processes"].prepare(params)()
    json.dumps(result, allow_nan=False)
    return result


def ps(pid: int) -> dict[str, str]:
    """What ps says of ``pid``, one field per call so that no column runs into another."""
    fields = ("ppid", "user:64", "rss", "nlwp", "stat", "comm", "lstart", "args")
    return {name.split(":")[0]: subprocess.run(
        ["ps", "-ww", "-o", f"{name}=", "-p", str(pid)], capture_output=True, text=True,
        check=True).stdout.strip() for name in fields}


def started_by_ps(lstart: str) -> float:
    return time.mktime(time.strptime(lstart, "%a %b %d %H:%M:%S %Y"))


async def test_a_child_matches_ps(spawn: Spawn) -> None:
    child = spawn(size=8)
    args = [str(arg) for arg in child.args]  # type: ignore[union-attr]  # a list: see spawn
    [row] = (await listing({"name": "rmlisting-child", "interval": 0}))["processes"]
    seen = ps(child.pid)
    assert row["pid"] == child.pid and row["ppid"] == int(seen["ppid"]) == os.getpid()
    assert row["user"] == seen["user"]
    assert row["memory_rss_bytes"] == int(seen["rss"]) * 1024 > 8 << 20
    assert row["threads"] == int(seen["nlwp"]) == 3
    assert row["status"] == "sleeping" and seen["stat"].startswith("S")
    assert seen["comm"] == LONG_NAME[:15] and row["name"] == LONG_NAME
    assert abs(row["started_at"] - started_by_ps(seen["lstart"])) < 1.0
    assert row["cmdline"] == " ".join(args)  # nothing in it to redact
    assert seen["args"].split()[0] == row["cmdline"].split()[0] == args[0]
    assert seen["args"].endswith(" 8 idle --role=listing")


async def test_our_own_process_matches_ps_and_proc() -> None:
    me = psutil.Process()
    result = await listing({"name": me.name(), "limit": 100, "interval": 0})
    [row] = [r for r in result["processes"] if r["pid"] == os.getpid()]
    seen = ps(os.getpid())
    assert (row["ppid"], row["user"]) == (int(seen["ppid"]), seen["user"])
    assert row["threads"] >= 1  # this process's worker threads come and go (the child's are exact)
    assert abs(row["memory_rss_bytes"] - int(seen["rss"]) * 1024) < 4 << 20  # we allocate
    statm = Path("/proc/self/statm").read_text().split()
    assert abs(row["memory_rss_bytes"] - int(statm[1]) * os.sysconf("SC_PAGE_SIZE")) < 4 << 20
    assert row["cmdline"] == " ".join(me.cmdline())[:processes.MAX_COMMAND_LINE]
    assert abs(row["started_at"] - started_by_ps(seen["lstart"])) < 1.0


async def test_the_psutil_path_gives_the_same_rows(spawn: Spawn,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for size in (4, 40, 20):
        spawn(size=size)
    query = {"name": "RMLISTING", "by": "memory", "limit": 2, "interval": 0.2}
    fast = await listing(query)
    monkeypatch.setattr(processes, "_PROCFS", False)
    slow = await listing(query)
    assert fast["matched_processes"] == slow["matched_processes"] == 3
    assert fast["total_processes"] > 3 and slow["total_processes"] > 3  # others come and go
    for a, b in zip(fast["processes"], slow["processes"], strict=True):
        assert a.pop("cpu_percent") <= 5 and b.pop("cpu_percent") <= 5
        assert a == b
    assert [r["memory_rss_bytes"] >> 20 > 40 for r in fast["processes"]] == [True, False]
    assert fast["processes"][1]["memory_rss_bytes"] >> 20 > 20
    assert list(fast) == list(slow)


async def test_cpu_percent_is_measured_over_the_interval(spawn: Spawn) -> None:
    busy, idle = spawn("rmlisting-busy", mode="busy"), spawn("rmlisting-idle")
    result = await listing({"name": "rmlisting-", "by": "cpu", "interval": 0.5})
    rows = {r["pid"]: r["cpu_percent"] for r in result["processes"]}
    # One spinning thread: up to one core, at least a share of a loaded machine's two; the
    # idle one a clock tick (2 % of 0.5 s) at most, as it settles into its read.
    assert 10 <= rows[busy.pid] <= 110 and rows[idle.pid] <= 4, rows
    assert result["processes"][0]["pid"] == busy.pid
    filtered = await listing({"name": "rmlisting-", "min_cpu_percent": 5, "interval": 0.5})
    assert [r["pid"] for r in filtered["processes"]] == [busy.pid], filtered
    mine = await listing({"name": "rmlisting-", "user": psutil.Process().username(),
                          "interval": 0})
    assert {r["pid"] for r in mine["processes"]} == {busy.pid, idle.pid}


def test_processes_that_exit_between_the_samples_are_left_out(spawn: Spawn) -> None:
    gone, stays = spawn("rmlisting-gone"), spawn("rmlisting-stays")
    started, first = processes._procfs_sample()
    assert {gone.pid, stays.pid} <= set(first)
    gone.kill()
    gone.wait()
    query = processes.ProcessQuery(name="rmlisting-", interval=0)
    result = processes._top_procfs(started, first, query)
    assert [r["pid"] for r in result["processes"]] == [stays.pid]
    assert _procfs.read_stat(gone.pid) is None
    assert _procfs.cmdline(gone.pid) is None and _procfs.real_uid(gone.pid) is None


def test_a_process_directory_without_files_is_skipped(tmp_path: Path) -> None:
    """A process that exits while /proc is listed leaves an empty or vanished directory."""
    (tmp_path / "17").mkdir()  # its files went away
    (tmp_path / "23").mkdir()
    stat = Path(f"/proc/{os.getpid()}/stat").read_bytes().replace(
        f"{os.getpid()} (".encode(), b"23 (", 1)
    (tmp_path / "23" / "stat").write_bytes(stat)
    (tmp_path / "self").mkdir()
    sample = _procfs.sample(str(tmp_path))
    assert list(sample) == [23] and sample[23].ppid == os.getppid()
    assert _procfs.cmdline(17, str(tmp_path)) is None


def test_stat_lines_with_odd_names_parse(tmp_path: Path) -> None:
    fields = " ".join(["S", "1"] + ["0"] * 9 + ["7", "5"] + ["0"] * 4 + ["4", "0", "99", "0",
                                                                         "250"] + ["0"] * 20)
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "stat").write_text(f"42 (a) b (c)) {fields}\n")
    stat = _procfs.read_stat(42, str(tmp_path))
    assert stat == _procfs.Stat(pid=42, comm="a) b (c)", state="S", ppid=1, cpu_ticks=12,
                                threads=4, start_ticks=99)


def test_cpu_percent_spans_the_two_samples_by_the_clock(spawn: Spawn) -> None:
    """An idle child, its first sample set one second of CPU back, over two clock seconds."""
    idle = spawn("rmlisting-clock")
    now = _procfs.read_stat(idle.pid)
    assert now is not None
    first = {idle.pid: dataclasses.replace(now, cpu_ticks=now.cpu_ticks - _procfs.TICKS)}
    query = processes.ProcessQuery(name="rmlisting-clock", interval=0)
    result = processes._top_procfs(10.0, first, query, clock=lambda: 12.0)
    [row] = result["processes"]
    assert row["cpu_percent"] == 50.0 and result["total_processes"] == 1
