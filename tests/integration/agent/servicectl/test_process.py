"""The process backend with real child processes: every action verified, drift refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from agent.servicectl import ActionFailed, StateChanged, apply, preview, status
from tests.integration.agent.servicectl.conftest import MakeService, Supervised


def _do(service: Supervised, action: str) -> dict[str, Any]:
    return apply(service.config, preview(service.config, service.name, action))


def _wait_for(condition: object, timeout: float = 5.0) -> bool:
    """Poll a real process's visible effect (a marker file): no fake clock can stand in."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.02)
    return False


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_start_status_stop(make_service: MakeService) -> None:
    service = make_service()
    assert status(service.config, "worker")["state"] == "stopped"
    started = _do(service, "start")
    pid = service.pid()
    assert started["after"] == {"state": "running", "pid": pid, "detail": "",
                                "since": psutil.Process(pid).create_time()}
    assert status(service.config, "worker")["pid"] == pid
    shown = preview(service.config, "worker", "stop")
    assert shown.needs_consent and shown.current.pid == pid and shown.expected == "stopped"
    stopped = apply(service.config, shown)
    assert stopped["after"]["state"] == "stopped" and not _alive(pid)
    assert not service.pidfile.exists()


def test_reload_signals_the_running_process(make_service: MakeService) -> None:
    service = make_service()
    _do(service, "start")
    pid = service.pid()
    result = _do(service, "reload")
    assert result["after"]["pid"] == pid
    assert _wait_for(lambda: service.marker.exists()
                     and service.marker.read_text() == "reloaded\n")


def test_restart_gives_a_new_process(make_service: MakeService) -> None:
    service = make_service()
    _do(service, "start")
    old = service.pid()
    result = _do(service, "restart")
    assert result["after"]["pid"] == service.pid() != old
    assert not _alive(old)


def test_a_process_deaf_to_sigterm_is_killed(make_service: MakeService) -> None:
    service = make_service("deaf", stop_timeout_seconds=0.5)
    _do(service, "start")
    pid = service.pid()
    started = time.monotonic()
    assert _do(service, "stop")["after"]["state"] == "stopped"
    assert time.monotonic() - started >= 0.5
    assert not _alive(pid)


def test_a_crashed_process_is_failed_and_can_be_started(make_service: MakeService) -> None:
    service = make_service()
    _do(service, "start")
    os.killpg(service.pid(), signal.SIGKILL)
    assert _wait_for(lambda: status(service.config, "worker")["state"] == "failed")
    assert status(service.config, "worker")["detail"] == "the process exited"
    assert _do(service, "start")["after"]["state"] == "running"


def test_a_start_that_dies_at_once_fails_clearly(make_service: MakeService,
                                                 tmp_path: Path) -> None:
    service = make_service(name="broken", start=[sys.executable, "-c", "raise SystemExit(3)"],
                           pidfile=str(tmp_path / "broken.pid"))
    with pytest.raises(ActionFailed, match="exited at once \\(exit code 3\\)"):
        _do(service, "start")
    assert status(service.config, "broken")["state"] == "failed"


def test_a_pid_reused_by_another_program_is_never_signalled(make_service: MakeService) -> None:
    service = make_service()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        # Until exec completes the new pid shows an empty command line, which reads as exiting.
        assert _wait_for(lambda: "time.sleep(30)" in " ".join(psutil.Process(other.pid).cmdline()))
        service.pidfile.parent.mkdir(parents=True, exist_ok=True)
        service.pidfile.write_text(f"{other.pid}\n")
        assert status(service.config, "worker")["detail"] == \
            "the pid now belongs to another program"
        _do(service, "stop")  # clears the stale pidfile, signals nothing
        assert other.poll() is None and not service.pidfile.exists()
    finally:
        other.kill()
        other.wait()


def test_a_garbage_pidfile_is_failed(make_service: MakeService) -> None:
    service = make_service()
    service.pidfile.parent.mkdir(parents=True, exist_ok=True)
    service.pidfile.write_text("1; rm -rf /\n")
    assert status(service.config, "worker")["state"] == "failed"


def test_a_change_after_the_preview_refuses(make_service: MakeService) -> None:
    service = make_service()
    _do(service, "start")
    shown = preview(service.config, "worker", "stop")
    _do(service, "restart")  # someone else restarted it: a new pid
    new_pid = service.pid()
    with pytest.raises(StateChanged, match="nothing was done"):
        apply(service.config, shown)
    assert _alive(new_pid)


def test_start_when_running_keeps_the_process(make_service: MakeService) -> None:
    service = make_service()
    _do(service, "start")
    pid = service.pid()
    assert _do(service, "start")["after"]["pid"] == pid


def test_reload_of_a_stopped_service_is_refused(make_service: MakeService) -> None:
    service = make_service()
    with pytest.raises(ActionFailed, match="cannot reload, the service is stopped"):
        preview(service.config, "worker", "reload")
