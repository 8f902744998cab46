"""Whole-process wall time of one ``rmctl diag system`` next to ``ssh localhost true``.

A real deployment (controller and agent processes, set up with the rmctl and rmagent
commands through :class:`demo.deployment.Deployment`) runs in a temporary directory; the
engineer opens a session with ``rmctl session open``, and each measured run is a fresh
``rmctl --home ENGINEER diag system`` process: interpreter start, imports, configuration,
mTLS connection, the signed operation through controller and agent, the rendered table.

The peer is ``ssh localhost true`` (a non-interactive one-shot remote command), when an sshd
listens on 127.0.0.1:22 and key authentication works without a prompt. Target: rmctl median
<= 0.6x the ssh median. Always-available context rows show where rmctl's time goes: the bare
interpreter, ``rmctl --help`` (interpreter, CLI framework) and importing every module a
``diag system`` run loads (with the garbage collector set as rmctl sets it, so that the row
differs from the run by the run's own work only). A missed target is printed, not an error.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from demo.deployment import BIN, Deployment

TARGET_RATIO = 0.6
RUNS = 10
WARMUP_RUNS = 1
SSH = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
       "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "localhost", "true"]
_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


@dataclass(frozen=True)
class WallTime:
    name: str
    samples_s: tuple[float, ...]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_s) * 1000

    @property
    def min_ms(self) -> float:
        return min(self.samples_s) * 1000

    @property
    def max_ms(self) -> float:
        return max(self.samples_s) * 1000


def env() -> dict[str, str]:
    out = dict(os.environ)
    out.pop("RMAINT_HOME", None)
    out.pop("PYTHONPROFILEIMPORTTIME", None)
    return out


def walls(commands: Sequence[tuple[str, Sequence[str]]], *, runs: int = RUNS) -> list[WallTime]:
    """Wall times of fresh processes, one run of each command per round so that drift in the
    machine's load touches them all alike; the first ``WARMUP_RUNS`` rounds are not kept."""
    samples: list[list[float]] = [[] for _ in commands]
    for round_ in range(WARMUP_RUNS + runs):
        for (_, argv), kept in zip(commands, samples, strict=True):
            start = time.perf_counter()
            done = subprocess.run(argv, capture_output=True, env=env(), timeout=60, check=False)
            elapsed = time.perf_counter() - start
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: "
                                   f"{done.stderr.decode(errors='replace').strip()}")
            if round_ >= WARMUP_RUNS:
                kept.append(elapsed)
    return [WallTime(name, tuple(kept)) for (name, _), kept in zip(commands, samples, strict=True)]


def ssh_peer() -> str | None:
    """Why ``ssh localhost true`` cannot be measured here, or None when it can."""
    if shutil.which("sshd") is None and not Path("/usr/sbin/sshd").exists():
        why = "no sshd installed"
    else:
        why = "sshd installed"
    try:
        with socket.create_connection(("127.0.0.1", 22), timeout=0.5):
            pass
    except OSError:
        return f"{why}, nothing listens on 127.0.0.1:22"
    if shutil.which("ssh") is None:
        return "no ssh client installed"
    done = subprocess.run(SSH, capture_output=True, timeout=30, check=False)
    if done.returncode != 0:
        return (f"'ssh localhost true' fails non-interactively "
                f"({done.stderr.decode(errors='replace').strip()[:120]})")
    return None


@dataclass(frozen=True)
class ImportProfile:
    total_ms: float  # sum of every module's own time
    top_level: list[tuple[str, float]]  # imports made by no other module, cumulative ms, in order
    by_package: list[tuple[str, float]]  # own time summed per top-level package name


def profile_imports(argv: Sequence[str], limit: int = 8) -> ImportProfile:
    """One run of ``argv`` under ``python -X importtime`` (PYTHONPROFILEIMPORTTIME=1)."""
    profiled = env() | {"PYTHONPROFILEIMPORTTIME": "1"}
    done = subprocess.run(argv, capture_output=True, text=True, env=profiled, timeout=60,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode} under -X importtime")
    top_level: list[tuple[str, float]] = []
    by_package: Counter[str] = Counter()
    for line in done.stderr.splitlines():
        match = _IMPORT_LINE.match(line)
        if match is None:
            continue
        own, cumulative, indent, name = int(match[1]), int(match[2]), len(match[3]), match[4]
        by_package[name.split(".")[0]] += own
        if indent == 1:
            top_level.append((name, cumulative / 1000))
    return ImportProfile(sum(by_package.values()) / 1000, top_level,
                         [(name, us / 1000) for name, us in by_package.most_common(limit)])


def show(rows: Sequence[WallTime], reference: WallTime) -> None:
    print(f"{'process':<46}{'median ms':>11}{'min ms':>9}{'max ms':>9}{'x rmctl':>9}")
    for row in rows:
        print(f"{row.name:<46}{row.median_ms:>11.1f}{row.min_ms:>9.1f}{row.max_ms:>9.1f}"
              f"{row.median_ms / reference.median_ms:>9.2f}")


def bench(d: Deployment) -> None:
    python = sys.executable
    rmctl = str(BIN / "rmctl")
    diag = [rmctl, "--home", str(d.engineer_home), "diag", "system"]
    profile = profile_imports(diag)
    # Every module a diag system run imports, in its order, without the call itself, with
    # the garbage collector as rmctl sets it while it starts and at exit (controller.cli._gc).
    imports = ("from controller.cli import _gc; _gc.starting(); import "
               + ", ".join(name for name, _ in profile.top_level
                           if all(part.isidentifier() for part in name.split(".")))
               + "; _gc.exiting()")
    unavailable = ssh_peer()
    commands: list[tuple[str, Sequence[str]]] = [
        ("rmctl diag system", diag),
        (f"python -c pass ({Path(python).name} of the venv)", [python, "-c", "pass"]),
        ("rmctl --help", [rmctl, "--help"]),
        ("python -c 'import <all diag system imports>'", [python, "-c", imports]),
    ]
    if unavailable is None:
        commands.append(("ssh localhost true", SSH))
    subject, bare, helped, imported, *rest = walls(commands)
    peer = rest[0] if rest else None

    print(f"{RUNS} runs each, interleaved, after {WARMUP_RUNS} warm-up round; "
          "wall time of the whole process")
    show([*([peer] if peer else []), subject, bare, helped, imported], subject)
    if peer is None:
        print(f"peer 'ssh localhost true' unavailable: {unavailable}; "
              f"target (rmctl <= {TARGET_RATIO}x ssh) not evaluated")
    else:
        ratio = subject.median_ms / peer.median_ms
        print(f"median ratio rmctl diag system / ssh localhost true: {ratio:.2f}x "
              f"(target <= {TARGET_RATIO}x: {'met' if ratio <= TARGET_RATIO else 'NOT met'})")

    print("where rmctl diag system's time goes (medians, ms):")
    for label, value in (
        ("interpreter start and exit", bare.median_ms),
        ("+ imports of a diag system run (CLI, client, grpc, protobuf)",
         imported.median_ms - bare.median_ms),
        ("+ config, mTLS connect, signed call via controller+agent, output",
         subject.median_ms - imported.median_ms),
    ):
        print(f"  {label:<68}{value:>9.1f}")
    print(f"python -X importtime of one rmctl diag system run (profiling inflates times): "
          f"{profile.total_ms:.0f} ms importing")
    print(f"  {'top-level import':<46}{'cum. ms':>8}  {'package (own time summed)':<26}{'ms':>8}")
    costliest = sorted(profile.top_level, key=lambda item: item[1], reverse=True)
    for (name, ms), (package, own) in zip(costliest, profile.by_package, strict=False):
        print(f"  {name:<46}{ms:>8.1f}  {package:<26}{own:>8.1f}")


def compile_bytecode() -> None:
    """Write the .pyc files an ordinary install has, even where PYTHONDONTWRITEBYTECODE is set."""
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "compileall", "-q",
                    *(str(root / d) for d in ("agent", "controller", "permissions", "pki", "protos"))],
                   check=True, stdout=subprocess.DEVNULL)


def main() -> int:
    print("== bench.cli_walltime: one rmctl diag system process vs ssh localhost true", flush=True)
    compile_bytecode()
    with tempfile.TemporaryDirectory(prefix="rmaint-bench-") as tmp:
        d = Deployment(Path(tmp) / "deployment")
        try:
            started = time.monotonic()
            d.standard_setup()
            case_id = d.open_case()
            d.grant_access(case_id)
            d.engineer("session", "open", "--case", case_id, "--agent", "web-1")
            print(f"deployment ready in {time.monotonic() - started:.1f} s", flush=True)
            bench(d)
            d.engineer("session", "close")
        finally:
            d.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
