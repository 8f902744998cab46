"""Driving a systemd unit through ``systemctl``: argument vectors, never a shell.

A unit name from the policy is always the last argument, after ``--``, so it can never
be read as an option. The environment is fixed (C locale, UTC, no pager, no colours)
so that the output this module parses is the same on every host.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from agent.servicectl.errors import ActionFailed, SystemdUnavailable
from agent.servicectl.policy import ServiceRule
from agent.servicectl.state import (
    FAILED,
    RUNNING,
    STARTING,
    STOPPED,
    STOPPING,
    UNKNOWN,
    ServiceState,
)

SYSTEMD_RUNNING = Path("/run/systemd/system")
NOT_AVAILABLE = "systemd is not available on this host"
PROPERTIES = ("LoadState", "ActiveState", "SubState", "MainPID", "StateChangeTimestamp")
_ENV = {"LANG": "C", "LC_ALL": "C", "TZ": "UTC", "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": "",
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
_ACTIVE = {"active": RUNNING, "reloading": RUNNING, "refreshing": RUNNING,
           "inactive": STOPPED, "failed": FAILED, "activating": STARTING,
           "deactivating": STOPPING}
_MAX_MESSAGE = 300

# (argv, timeout seconds) -> (exit code, stdout, stderr)
Runner = Callable[[Sequence[str], float], tuple[int, str, str]]


def run_systemctl(argv: Sequence[str], timeout: float) -> tuple[int, str, str]:
    """Run ``argv`` with the fixed environment; ActionFailed if it overruns ``timeout``."""
    try:
        done = subprocess.run(list(argv), stdin=subprocess.DEVNULL, capture_output=True,
                              env=_ENV, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ActionFailed(f"systemctl did not answer within {timeout:g} s") from exc
    return (done.returncode, done.stdout.decode(errors="replace"),
            done.stderr.decode(errors="replace"))


def show_argv(systemctl: str, unit: str) -> list[str]:
    return [systemctl, "show", "--no-pager", f"--property={','.join(PROPERTIES)}", "--", unit]


def action_argv(systemctl: str, action: str, unit: str) -> list[str]:
    return [systemctl, "--no-pager", "--no-ask-password", action, "--", unit]


def parse_show(output: str) -> dict[str, str]:
    """``KEY=value`` lines of ``systemctl show`` as a dict (values may be empty)."""
    properties: dict[str, str] = {}
    for line in output.splitlines():
        key, sep, value = line.partition("=")
        if sep and key:
            properties.setdefault(key, value)
    return properties


def to_state(properties: dict[str, str], unit: str) -> ServiceState:
    """The unit's state; ActionFailed when systemd has no such unit loaded."""
    load = properties.get("LoadState", "")
    if load != "loaded":
        raise ActionFailed(f"the unit {unit} is not loaded ({load or 'no LoadState'})")
    active = properties.get("ActiveState", "")
    pid = properties.get("MainPID", "0")
    return ServiceState(_ACTIVE.get(active, UNKNOWN),
                        int(pid) if pid.isdigit() and int(pid) > 0 else None,
                        parse_timestamp(properties.get("StateChangeTimestamp", "")),
                        properties.get("SubState", ""))


def parse_timestamp(value: str) -> float | None:
    """Unix time of ``Wed 2026-09-30 19:37:07 UTC`` (systemctl in TZ=UTC); else None."""
    parts = value.split()
    if len(parts) != 4 or parts[3] != "UTC":
        return None
    try:
        moment = datetime.strptime(f"{parts[1]} {parts[2]}", "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC).timestamp()


class Systemd:
    """One allowlisted unit. ``run`` is the only door to ``systemctl``."""

    def __init__(self, rule: ServiceRule, run: Runner = run_systemctl,
                 marker: Path = SYSTEMD_RUNNING) -> None:
        self.rule = rule
        self._run = run
        self._marker = marker

    def status(self) -> ServiceState:
        code, out, err = self._run(show_argv(self._systemctl(), self.rule.unit),
                                   self.rule.verify_timeout)
        if code != 0:
            raise ActionFailed(f"systemctl show {self.rule.unit} failed: {_short(err)}")
        return to_state(parse_show(out), self.rule.unit)

    def act(self, action: str) -> None:
        """Ask systemd for ``action`` (start, stop, restart, reload) and wait for its job."""
        code, _, err = self._run(action_argv(self._systemctl(), action, self.rule.unit),
                                 self.rule.verify_timeout)
        if code != 0:
            raise ActionFailed(f"systemctl {action} {self.rule.unit} failed: {_short(err)}")

    def _systemctl(self) -> str:
        systemctl = shutil.which("systemctl", path=_ENV["PATH"])
        if not self._marker.is_dir() or systemctl is None:
            raise SystemdUnavailable(NOT_AVAILABLE)
        return systemctl


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text[:_MAX_MESSAGE] or "no message"
