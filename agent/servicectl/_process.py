"""A process the agent supervises itself, for hosts without systemd.

The start command runs in the foreground in its own session (so a stop reaches its
children too), with stdin and output on /dev/null and a fixed environment. The agent
writes its pid to the pidfile. The pidfile is trusted only as far as the process it
names still runs the configured command line: otherwise the service counts as failed
and nothing is signalled. State: no pidfile, stopped; pidfile and the process, running;
pidfile without the process, failed (it exited without being stopped).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import psutil

from agent.servicectl.errors import ActionFailed
from agent.servicectl.policy import ServiceRule
from agent.servicectl.state import FAILED, RUNNING, STOPPED, ServiceState
from pki.files import write_atomic

KILL_WAIT = 5.0
_POLL = 0.05
_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
# Children the agent started, kept so that they are reaped (and not left as zombies).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class Process:
    """One allowlisted supervised process; ``clock`` and ``sleep`` pace the waits."""

    def __init__(self, rule: ServiceRule, clock: Callable[[], float],
                 sleep: Callable[[float], None]) -> None:
        self.rule = rule
        self._clock = clock
        self._sleep = sleep

    def status(self) -> ServiceState:
        pid = self._read_pidfile()
        if pid is None:
            return ServiceState(STOPPED)
        if pid < 0:
            return ServiceState(FAILED, detail="the pidfile is unreadable")
        process = _running(pid)
        if process is None:
            return ServiceState(FAILED, detail="the process exited")
        try:
            cmdline = process.cmdline()
            since = process.create_time()
        except psutil.Error:
            cmdline = []
        if cmdline == list(self.rule.start):
            return ServiceState(RUNNING, pid, since)
        # A process in the middle of exiting shows an empty command line.
        return ServiceState(FAILED, detail="the pid now belongs to another program" if cmdline
                            else "the process exited")

    def act(self, action: str) -> None:
        {"start": self._start, "stop": self._stop, "restart": self._restart,
         "reload": self._reload}[action]()

    def _start(self) -> None:
        if self.status().state == RUNNING:
            return
        proc = subprocess.Popen(self.rule.start, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                cwd="/", env=_ENV, start_new_session=True)
        _CHILDREN[proc.pid] = proc
        write_atomic(Path(self.rule.pidfile), f"{proc.pid}\n".encode(), mode=0o644)
        deadline = self._clock() + self.rule.start_settle
        while self._clock() < deadline:
            if proc.poll() is not None:
                raise ActionFailed(f"{self.rule.name}: the process exited at once "
                                   f"(exit code {proc.returncode})")
            self._sleep(_POLL)

    def _stop(self) -> None:
        state = self.status()
        if state.state != RUNNING or state.pid is None:
            self._remove_pidfile()
            return
        _signal_group(state.pid, signal.Signals[self.rule.stop_signal])
        if not self._wait_gone(state.pid, self.rule.stop_timeout):
            _signal_group(state.pid, signal.SIGKILL)
            if not self._wait_gone(state.pid, KILL_WAIT):
                raise ActionFailed(f"{self.rule.name}: pid {state.pid} survived SIGKILL")
        self._remove_pidfile()

    def _restart(self) -> None:
        self._stop()
        self._start()

    def _reload(self) -> None:
        state = self.status()
        if state.state != RUNNING or state.pid is None:
            raise ActionFailed(f"{self.rule.name}: cannot reload, the service is {state.state}")
        os.kill(state.pid, signal.Signals[self.rule.reload_signal])

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        deadline = self._clock() + timeout
        while _running(pid) is not None:
            if self._clock() >= deadline:
                return False
            self._sleep(_POLL)
        return True

    def _read_pidfile(self) -> int | None:
        """The pid, None without a pidfile, -1 when it holds no pid."""
        try:
            fd = os.open(self.rule.pidfile, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError:
            return -1
        with os.fdopen(fd, "rb") as handle:
            text = handle.read(32).decode("ascii", errors="replace").strip()
        return int(text) if text.isdigit() and 0 < int(text) < 1 << 22 else -1

    def _remove_pidfile(self) -> None:
        try:
            os.unlink(self.rule.pidfile)
        except FileNotFoundError:
            pass


def _running(pid: int) -> psutil.Process | None:
    """The live process ``pid`` (reaping it first if it is an exited child of ours)."""
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        del _CHILDREN[pid]
        return None
    try:
        process = psutil.Process(pid)
        return None if process.status() == psutil.STATUS_ZOMBIE else process
    except psutil.Error:
        return None


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the process's group when it leads one (it was started that way), else it."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass
