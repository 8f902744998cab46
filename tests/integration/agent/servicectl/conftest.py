"""Real supervised processes: a Python sleeper that marks each SIGHUP, optionally deaf to
SIGTERM, allowlisted as process-backend services; every child is killed at teardown."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.servicectl import ServicesConfig, parse
from agent.servicectl._process import _CHILDREN

SLEEPER = """
import signal, sys, time
marker = sys.argv[1]
def reloaded(signum, frame):
    with open(marker, "a") as out:
        out.write("reloaded\\n")
signal.signal(signal.SIGHUP, reloaded)
if "deaf" in sys.argv[2:]:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
while True:
    time.sleep(0.05)
"""


@dataclass(frozen=True)
class Supervised:
    """The allowlisted service ``name``: its policy, pidfile and SIGHUP marker file."""

    name: str
    config: ServicesConfig
    pidfile: Path
    marker: Path

    def pid(self) -> int:
        return int(self.pidfile.read_text())


MakeService = Callable[..., Supervised]


@pytest.fixture
def make_service(tmp_path: Path) -> Iterator[MakeService]:
    """``make_service(*args, **policy)``: the sleeper with ``args`` as a service."""
    script = tmp_path / "sleeper.py"
    script.write_text(SLEEPER)

    def make(*args: str, name: str = "worker", **policy: Any) -> Supervised:
        marker, pidfile = tmp_path / f"{name}.hup", tmp_path / "run" / f"{name}.pid"
        entry = {"name": name, "backend": "process",
                 "start": [sys.executable, str(script), str(marker), *args],
                 "pidfile": str(pidfile), "actions": ["status", "start", "stop", "restart",
                                                      "reload"],
                 "start_settle_seconds": 0.3, "verify_timeout_seconds": 10, **policy}
        return Supervised(name, parse({"allow": [entry]}), pidfile, marker)

    yield make
    for pid, child in list(_CHILDREN.items()):
        if child.poll() is None:
            os.killpg(pid, signal.SIGKILL)
            child.wait()
        _CHILDREN.pop(pid, None)
