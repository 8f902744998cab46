"""``diag.processes`` next to ``ps aux`` on a busy machine, and the idle agent's footprint.

Process listing: enough idle children (``sleep 300``, all in one process group that is
killed at the end) are started that the machine has at least ``MIN_PROCESSES`` processes.
Then, interleaved round by round, are timed (median of ``RUNS``):

(a) ``ps aux`` as a whole process, output discarded (the peer);
(b) the agent's ``diag.processes`` implementation, called in-process on one event loop with
    ``limit=100, interval=0`` through the catalogue (``prepare`` then the runner): the work
    the daemon does per call, without gRPC, signing or the controller;
(c) the same call through ``python -c`` as a whole process (interpreter start, imports, one
    call), for context.

Target: (b) <= 2x (a). On Linux (b) reads /proc directly; ``--listing-only`` skips the
footprint part below.

Idle footprint: a real deployment (``demo.deployment.Deployment.standard_setup``: controller
and ``rmagent run`` processes) and, in a subprocess, a bare grpc.aio mutual-TLS server (the
``bench/echo.py`` pieces) are started; after ``SETTLE_S`` seconds the RSS and CPU time of both
(with any children) are read over a ``WINDOW_S`` window with psutil. Targets: agent RSS <= 1.3x
the bare server's, agent CPU <= 0.2 % of one core. A missed target is printed, not an error.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from agent.catalogue import CATALOGUE
from demo.deployment import Deployment

MIN_PROCESSES = 500
RUNS = 10
WARMUP_RUNS = 1
PARAMS = {"limit": 100, "interval": 0}
LISTING_TARGET = 2.0
SETTLE_S = 10.0
WINDOW_S = 20.0
RSS_TARGET = 1.3
CPU_TARGET_PERCENT = 0.2

_ONE_CALL = ("import asyncio; from agent.catalogue import CATALOGUE; "
             f"asyncio.run(CATALOGUE['diag.processes'].prepare({PARAMS!r})())")

# A bare grpc.aio mTLS server with one echo method, idle until killed; prints its port.
_ECHO_SERVER = """
import asyncio, sys
from pathlib import Path
import grpc
from bench.echo import _echo, make_pki
from pki.tls import server_credentials, server_options

async def main():
    server_files, _ = make_pki(Path(sys.argv[1]))
    server = grpc.aio.server(options=server_options())
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(_echo)})
    server.add_generic_rpc_handlers((handler,))
    port = server.add_secure_port("127.0.0.1:0", server_credentials(server_files))
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()

asyncio.run(main())
"""


# -- process listing ----------------------------------------------------------------------

def spawn_idle(count: int) -> subprocess.Popen[bytes] | None:
    """``count`` ``sleep 300`` children of one shell, all in a new process group."""
    if count <= 0:
        return None
    script = f"i=0; while [ $i -lt {count} ]; do sleep 300 & i=$((i+1)); done; wait"
    shell = subprocess.Popen(["sh", "-c", script], start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if len(psutil.Process(shell.pid).children()) >= count:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    return shell


def kill_group(shell: subprocess.Popen[bytes] | None) -> None:
    if shell is None:
        return
    try:
        os.killpg(shell.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    shell.wait()


async def time_listing() -> tuple[list[float], list[float], list[float], dict[str, int]]:
    spec = CATALOGUE["diag.processes"]
    ps: list[float] = []
    inproc: list[float] = []
    whole: list[float] = []
    seen: dict[str, int] = {}
    env = dict(os.environ)
    env.pop("RMAINT_HOME", None)
    for round_ in range(WARMUP_RUNS + RUNS):
        start = time.perf_counter()
        subprocess.run(["ps", "aux"], stdout=subprocess.DEVNULL, check=True, timeout=60)
        t_ps = time.perf_counter() - start

        start = time.perf_counter()
        result = await spec.prepare(PARAMS)()
        t_in = time.perf_counter() - start

        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", _ONE_CALL], stdout=subprocess.DEVNULL,
                       check=True, timeout=60, env=env)
        t_whole = time.perf_counter() - start

        seen = {"total_processes": result["total_processes"],
                "shown": len(result["processes"])}
        if round_ >= WARMUP_RUNS:
            ps.append(t_ps * 1000)
            inproc.append(t_in * 1000)
            whole.append(t_whole * 1000)
    return ps, inproc, whole, seen


def listing_benchmark() -> bool:
    before = len(psutil.pids())
    shell = spawn_idle(MIN_PROCESSES - before + 10)
    try:
        during = len(psutil.pids())
        print(f"processes: {before} before, {during} with idle children "
              f"(target >= {MIN_PROCESSES})")
        ps, inproc, whole, seen = asyncio.run(time_listing())
    finally:
        kill_group(shell)
    print(f"diag.processes saw {seen['total_processes']} processes, returned {seen['shown']}")
    print(f"{'path':<52}{'median ms':>11}{'min ms':>9}{'max ms':>9}")
    for name, samples in (("(a) ps aux, output discarded", ps),
                          ("(b) diag.processes in-process (limit=100, interval=0)", inproc),
                          ("(c) diag.processes via python -c (whole process)", whole)):
        print(f"{name:<52}{statistics.median(samples):>11.1f}{min(samples):>9.1f}"
              f"{max(samples):>9.1f}")
    ratio = statistics.median(inproc) / statistics.median(ps)
    met = ratio <= LISTING_TARGET
    print(f"median ratio (b) / (a): {ratio:.2f}x "
          f"(target <= {LISTING_TARGET}x: {'met' if met else 'NOT met'})")
    return met


# -- idle footprint -----------------------------------------------------------------------

def _tree(pid: int) -> list[psutil.Process]:
    proc = psutil.Process(pid)
    return [proc, *proc.children(recursive=True)]


def _cpu_seconds(pid: int) -> float:
    total = 0.0
    for proc in _tree(pid):
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def _rss(pid: int) -> int:
    total = 0
    for proc in _tree(pid):
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def footprint_benchmark(root: Path) -> tuple[bool, bool]:
    deployment = Deployment(root / "deployment")
    echo: subprocess.Popen[str] | None = None
    try:
        deployment.standard_setup()
        agent = next(p for p in deployment.processes if "rmagent" in str(p.args))
        (root / "echo").mkdir()
        echo = subprocess.Popen([sys.executable, "-c", _ECHO_SERVER, str(root / "echo")],
                                stdout=subprocess.PIPE, text=True, start_new_session=True)
        assert echo.stdout is not None
        port = echo.stdout.readline().strip()
        if not port:
            raise RuntimeError("the bare grpc.aio server did not start")
        time.sleep(SETTLE_S)
        pids = {"rmagent run (idle, enrolled)": agent.pid,
                "bare grpc.aio mTLS server (idle)": echo.pid}
        cpu0 = {name: _cpu_seconds(pid) for name, pid in pids.items()}
        start = time.monotonic()
        time.sleep(WINDOW_S)
        elapsed = time.monotonic() - start
        cpu = {name: (_cpu_seconds(pid) - cpu0[name]) / elapsed * 100
               for name, pid in pids.items()}
        rss = {name: _rss(pid) for name, pid in pids.items()}
    finally:
        deployment.stop()
        if echo is not None:
            echo.kill()
            echo.wait()
    tick = 100 / os.sysconf("SC_CLK_TCK") / elapsed  # one clock tick, in % of a core
    print(f"idle footprint after {SETTLE_S:.0f} s, CPU over a {elapsed:.0f} s window "
          f"(resolution {tick:.3f} % of a core):")
    print(f"{'process':<44}{'RSS MiB':>10}{'CPU % core':>12}")
    for name in pids:
        print(f"{name:<44}{rss[name] / 2**20:>10.1f}{cpu[name]:>12.3f}")
    agent_name, echo_name = pids
    ratio = rss[agent_name] / rss[echo_name]
    rss_met = ratio <= RSS_TARGET
    cpu_met = cpu[agent_name] <= CPU_TARGET_PERCENT
    print(f"RSS ratio agent / bare server: {ratio:.2f}x "
          f"(target <= {RSS_TARGET}x: {'met' if rss_met else 'NOT met'})")
    print(f"agent idle CPU: {cpu[agent_name]:.3f} % of a core "
          f"(target <= {CPU_TARGET_PERCENT} %: {'met' if cpu_met else 'NOT met'})")
    return rss_met, cpu_met


def main() -> None:
    listing_benchmark()
    if "--listing-only" in sys.argv[1:]:
        return
    print()
    root = Path(tempfile.mkdtemp(prefix="rmaint-bench-"))
    try:
        footprint_benchmark(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
