"""diag.read operations against the real host: values checked against /proc and the OS."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from agent.catalogue import CATALOGUE
from agent.diag import services

AWS = "AKIAIOSFODNN7EXAMPLE"
SECRETS = ("SECRETPW-1", "SECRETURL-2", AWS, "SECRETENV-3")
CHILD = """
import socket, sys, threading
held = open(sys.argv[1])
server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen()
client = socket.create_connection(server.getsockname()); accepted, _ = server.accept()
stop = threading.Event()
for _ in range(2):
    threading.Thread(target=stop.wait, daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
"""

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


async def run(name: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    result = await CATALOGUE[name].prepare(params or {})()
    json.dumps(result, allow_nan=False)  # JSON-ready, as the dispatcher sends it
    return result


def _proc_kib(field: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, value = line.split(":", 1)
        if name == field:
            return int(value.split()[0])
    raise AssertionError(field)


@pytest.fixture
def child(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A process named rmdiagchild with secrets in its command line and environment."""
    link = tmp_path / "rmdiagchild"
    link.symlink_to(sys.executable)
    held = tmp_path / "held.txt"
    held.write_text("x")
    proc = subprocess.Popen(
        [str(link), "-c", CHILD, str(held), "--password=SECRETPW-1", "--db",
         "postgres://app:SECRETURL-2@db/x", AWS],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "MY_API_TOKEN": "SECRETENV-3"})
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    yield proc
    proc.communicate(timeout=5)


async def test_memory_matches_proc_meminfo() -> None:
    result = await run("diag.memory")
    assert result["memory"]["total_bytes"] == _proc_kib("MemTotal") * 1024
    assert result["swap"]["total_bytes"] == _proc_kib("SwapTotal") * 1024
    assert 0 < result["memory"]["available_bytes"] <= result["memory"]["total_bytes"]
    assert 0 <= result["memory"]["percent"] <= 100


async def test_cpu_matches_proc_stat() -> None:
    started = time.monotonic()
    result = await run("diag.cpu", {"interval": 0.1})
    elapsed = time.monotonic() - started
    stat = Path("/proc/stat").read_text().splitlines()
    cores = [line for line in stat if line.startswith("cpu") and line[3].isdigit()]
    assert result["logical_count"] == len(cores) == len(result["per_core_percent"])
    assert all(0 <= p <= 100 for p in [result["percent"], *result["per_core_percent"]])
    user_now = int(stat[0].split()[1]) / os.sysconf("SC_CLK_TCK")
    assert 0 <= user_now - result["times"]["user_seconds"] <= (elapsed + 1) * len(cores)
    assert abs(sum(result["times_percent"].values()) - 100) < 2
    load = [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    assert result["load_average_15m"] == pytest.approx(load[2], abs=0.5)
    assert result["interval_seconds"] == 0.1
    # Linux does not count system calls: unknown, not a reading of 0.
    assert result["stats"]["syscalls"] is None
    assert result["stats"]["context_switches"] > 0
    frequency = result["frequency"]
    if frequency is not None:  # limits the platform does not tell are unknown too
        assert all(frequency[k] is None or frequency[k] > 0 for k in ("min_mhz", "max_mhz"))


async def test_system_load_matches_proc_loadavg() -> None:
    result = await run("diag.system")
    load = [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    assert result["cpu"]["load_average"] == pytest.approx(load, abs=0.5)


async def test_load_the_system_does_not_keep_is_unknown_not_zero(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Every Linux keeps load averages; a platform that keeps none is simulated here.
    def unavailable() -> tuple[float, float, float]:
        raise OSError("load average not obtainable")
    monkeypatch.setattr(psutil, "getloadavg", unavailable)
    assert (await run("diag.system"))["cpu"]["load_average"] is None
    cpu = await run("diag.cpu", {"interval": 0.1})
    assert [cpu[f"load_average_{m}m"] for m in (1, 5, 15)] == [None, None, None]


async def test_disks_match_statvfs_and_diskstats() -> None:
    result = await run("diag.disks")
    mounts = {line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()}
    for fs in result["filesystems"]:
        vfs = os.statvfs(fs["mountpoint"])
        assert fs["mountpoint"] in mounts
        assert fs["total_bytes"] == vfs.f_blocks * vfs.f_frsize
        assert fs["inodes_total"] == vfs.f_files
        assert fs["inodes_used"] <= vfs.f_files
    disks = {line.split()[2] for line in Path("/proc/diskstats").read_text().splitlines()}
    assert {d["disk"] for d in result["io_counters"]} <= disks
    assert not any(d["disk"].startswith("loop") for d in result["io_counters"])


async def test_network_shows_interfaces_and_a_socket_we_listen_on() -> None:
    with socket.socket() as server, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        server.bind(("127.0.0.1", 0))
        server.listen()
        udp.bind(("127.0.0.1", 0))
        port, udp_port = server.getsockname()[1], udp.getsockname()[1]
        with socket.create_connection(server.getsockname()), server.accept()[0]:
            result = await run("diag.network")
    names = {i["name"] for i in result["interfaces"]}
    assert names == set(os.listdir("/sys/class/net"))
    lo = next(i for i in result["interfaces"] if i["name"] == "lo")
    assert lo["is_up"] and lo["mtu_bytes"] == int(Path("/sys/class/net/lo/mtu").read_text())
    assert "127.0.0.1" in [a["address"] for a in lo["addresses"]]
    assert lo["received_bytes"] >= 0 and "errors_in" in lo
    me = psutil.Process().name()
    assert {"protocol": "tcp", "address": "127.0.0.1", "port": port, "pid": os.getpid(),
            "process": me} in result["listening"]
    assert {"protocol": "udp", "address": "127.0.0.1", "port": udp_port, "pid": os.getpid(),
            "process": me} in result["listening"]
    assert result["tcp_connections_by_state"]["ESTABLISHED"] >= 2


async def test_processes_filtered_with_redacted_command_lines(
        child: subprocess.Popen[str]) -> None:
    result = await run("diag.processes", {"name": "RMDIAG", "by": "memory", "interval": 0})
    assert result["matched_processes"] == 1 and result["total_processes"] > 1
    [row] = result["processes"]
    assert (row["pid"], row["ppid"], row["name"]) == (child.pid, os.getpid(), "rmdiagchild")
    assert row["user"] == psutil.Process().username()
    assert "--password=***" in row["cmdline"] and "postgres://app:***@db/x" in row["cmdline"]
    assert result["redactions"] == 3
    assert not any(s in json.dumps(result) for s in SECRETS)
    none = await run("diag.processes", {"name": "rmdiagchild", "user": "no-such-user"})
    assert none["processes"] == [] and none["matched_processes"] == 0


async def test_one_process_in_detail_without_its_environment_values(
        child: subprocess.Popen[str]) -> None:
    result = await run("diag.process", {"pid": child.pid})
    status = dict(line.split(":\t", 1) for line in
                  Path(f"/proc/{child.pid}/status").read_text().splitlines() if ":\t" in line)
    assert result["exists"] and result["ppid"] == os.getpid()
    assert result["num_threads"] == int(status["Threads"]) == 3
    assert len(result["threads"]) == 3
    assert result["fds_count"] == len(os.listdir(f"/proc/{child.pid}/fd"))
    assert result["open_files_count"] >= 1
    assert result["connections_count"] == 3
    assert result["connections_by_state"] == {"ESTABLISHED": 2, "LISTEN": 1}
    assert "MY_API_TOKEN" in result["environment_keys"] and "PATH" in result["environment_keys"]
    assert result["environment_values_withheld"] == len(result["environment_keys"])
    assert result["memory"]["rss_bytes"] > 0 and result["cpu_times"]["user_seconds"] >= 0
    assert result["redactions"] == 3 and "--password=***" in result["cmdline"]
    assert not any(s in json.dumps(result) for s in SECRETS)


async def test_a_process_that_does_not_exist() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert await run("diag.process", {"pid": proc.pid}) == {"pid": proc.pid, "exists": False}


async def test_clock_offset_against_the_controller() -> None:
    sent = time.time() - 5
    result = await run("diag.clock", {"controller_time": sent})
    assert result["agent_time_at"] == pytest.approx(time.time(), abs=1)
    assert result["offset_seconds"] == pytest.approx(5, abs=1)
    assert result["controller_time_at"] == sent
    assert result["monotonic_seconds"] == pytest.approx(time.monotonic(), abs=1)
    assert result["timezone"] and isinstance(result["utc_offset_seconds"], int)
    assert (await run("diag.clock"))["offset_seconds"] is None


async def test_services_say_clearly_when_systemd_is_not_running(tmp_path: Path) -> None:
    absent = await services.services(services.ServicesQuery(), marker=tmp_path / "none")
    assert absent == {"available": False, "reason": "systemd is not running on this host"}
    result = await run("diag.services")
    if not os.path.isdir("/run/systemd/system"):
        assert result == absent
        return
    assert result["available"] is True
    assert sum(result["units_by_active_state"].values()) == result["total_units"]
    assert all(set(u) == {"unit", "load", "active", "sub", "description"}
               for u in result["units"])


async def test_services_where_systemctl_cannot_answer(tmp_path: Path) -> None:
    """A marker that says systemd runs, on a host where it does not: systemctl fails."""
    if os.path.isdir("/run/systemd/system"):
        pytest.skip("systemd runs here: systemctl answers")
    result = await services.services(services.ServicesQuery(), marker=tmp_path)
    assert result["available"] is False
    assert result["reason"].startswith(("systemctl failed", "systemctl is not installed"))
