"""The idle agent's CPU with periodic inspection, next to the same agent without it.

A real deployment (``demo.deployment.Deployment.standard_setup``: controller and
``rmagent run`` processes) is started. The agent is measured idle, without an
``[inspect]`` section, for ``2 x INTERVAL_S`` seconds after ``SETTLE_S``; then it is
stopped, a profile checking disks, inodes, memory, swap, load, a service and the clock
offset is enabled with ``interval_seconds = INTERVAL_S`` (one minute), and the agent is
started again and measured over the same length of window, which holds two runs (plus the
one at start, inside the settle time). CPU is user + system time of the agent process and
its children, in % of one core. Target: with inspection <= 1 % of a core.

``--interval N`` measures with runs every N seconds instead (the window stays two
intervals long) and also prints the figure scaled to one run a minute; intervals under
30 s set ``RMAINT_INSPECT_MIN_INTERVAL`` for the agent. A missed target is printed, not an
error.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.process_listing import _cpu_seconds
from demo.deployment import Deployment

INTERVAL_S = 60.0
SETTLE_S = 10.0
TARGET_PERCENT = 1.0
PROFILE = """enabled = true
interval_seconds = {interval}
disk_percent = 95
inode_percent = 95
memory_percent = 95
swap_percent = 80
load_per_core = 4
services = ["rmaint-bench.service"]
clock_offset_seconds = 5
"""


def _agent(deployment: Deployment) -> subprocess.Popen[bytes]:
    return next(p for p in deployment.processes if "rmagent" in str(p.args))


def measure(pid: int, window: float) -> tuple[float, float]:
    """(% of one core over ``window`` after SETTLE_S, the window's real length)."""
    time.sleep(SETTLE_S)
    before, start = _cpu_seconds(pid), time.monotonic()
    time.sleep(window)
    elapsed = time.monotonic() - start
    return (_cpu_seconds(pid) - before) / elapsed * 100, elapsed


def run(root: Path, interval: float) -> tuple[float, float, float]:
    """(idle %, with inspection %, window seconds)."""
    deployment = Deployment(root / "deployment")
    window = 2 * interval
    try:
        deployment.standard_setup()
        idle, _ = measure(_agent(deployment).pid, window)
        deployment.stop(_agent(deployment))
        deployment.enable_inspection(PROFILE.format(interval=interval))
        inspected, elapsed = measure(deployment.start_agent().pid, window)
    finally:
        deployment.stop()
    return idle, inspected, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=INTERVAL_S,
                        help="seconds between inspection runs (default 60)")
    interval = parser.parse_args().interval
    if interval < 30:
        os.environ["RMAINT_INSPECT_MIN_INTERVAL"] = str(interval)
    root = Path(tempfile.mkdtemp(prefix="rmaint-bench-"))
    try:
        idle, inspected, elapsed = run(root, interval)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    tick = 100 / os.sysconf("SC_CLK_TCK") / elapsed
    print(f"agent CPU over {elapsed:.0f} s windows after {SETTLE_S:.0f} s "
          f"(resolution {tick:.3f} % of a core):")
    print(f"{'agent':<46}{'CPU % core':>12}")
    print(f"{'rmagent run, idle, no inspection':<46}{idle:>12.3f}")
    print(f"{f'rmagent run, inspection every {interval:g} s':<46}{inspected:>12.3f}")
    per_minute = inspected
    if interval != INTERVAL_S:
        per_minute = idle + (inspected - idle) * interval / INTERVAL_S
        print(f"{'scaled to one run a minute':<46}{per_minute:>12.3f}")
    met = per_minute <= TARGET_PERCENT
    print(f"agent CPU with inspection every minute: {per_minute:.3f} % of a core "
          f"(target <= {TARGET_PERCENT} %: {'met' if met else 'NOT met'})")


if __name__ == "__main__":
    main()
