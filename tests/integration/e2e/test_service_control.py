"""Service control through the real controller and agent processes and both CLIs: a
process the agent supervises is started (no consent), then stopped only after the
customer consented to that preview's digest, each result verified."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import psutil

from tests.integration.e2e.conftest import E2E, one_error_line

SLEEPER = "import time\nwhile True:\n    time.sleep(0.05)\n"


def _services(script: Path, pidfile: Path) -> str:
    return f"""[[services.allow]]
name = "worker"
backend = "process"
start = ["{sys.executable}", "{script}"]
pidfile = "{pidfile}"
actions = ["status", "start", "stop", "restart"]
start_settle_seconds = 0.3
verify_timeout_seconds = 10
"""


def _kill(pidfile: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        os.killpg(int(pidfile.read_text()), signal.SIGKILL)


def test_start_then_stop_with_consent(deployment_factory: Callable[..., E2E]) -> None:
    e2e = deployment_factory()
    d = e2e.d
    script, pidfile = d.root / "sleeper.py", d.root / "run" / "worker.pid"
    script.write_text(SLEEPER)
    d.enable_changes(_services(script, pidfile))
    e2e.grant_session(scopes=("service.control",))
    try:
        assert d.json(d.engineer("service", "status", "worker", "--json"))["state"] == "stopped"
        start = d.json(d.engineer("service", "preview", "worker", "start", "--json"))
        assert start["needs_consent"] is False and start["expected"] == "running"
        started = d.json(d.engineer("service", "apply", start["digest"], "--json"))
        pid = started["after"]["pid"]
        assert started["verified"] is True and psutil.pid_exists(pid)

        stop = d.engineer("service", "preview", "worker", "stop").stdout
        assert "rmagent approve-change" in stop and "running (pid" in stop
        stop_digest = d.json(d.engineer("service", "preview", "worker", "stop",
                                        "--json"))["digest"]
        refused = d.engineer("service", "apply", stop_digest, check=False)
        assert "permission denied" in one_error_line(refused)  # no consent yet
        assert psutil.pid_exists(pid)

        listed = {c["digest"]: c for c in d.json(d.rmagent("changes", "--json"))}
        assert listed[stop_digest]["kind"] == "service"
        assert listed[stop_digest]["current"]["pid"] == pid
        assert "running (pid" in d.rmagent("changes").stdout
        d.rmagent("approve-change", stop_digest[:24], "--yes")
        stopped = d.json(d.engineer("service", "apply", stop_digest, "--json"))
        assert stopped["after"]["state"] == "stopped" and stopped["verified"] is True
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        again = d.engineer("service", "apply", stop_digest, check=False)
        assert again.returncode != 0  # a preview is applied once
    finally:
        _kill(pidfile)
