"""Status, preview and verified apply of service actions, for either backend.

``apply`` acts only if the service is still in the state (and main process) the preview
saw, then polls until the service really is in the requested state or the rule's
``verify_timeout`` passes. Stop and restart need the customer's consent to the
preview's digest; start and reload do not (they switch nothing off), nor does status.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from agent.servicectl._process import Process
from agent.servicectl._systemd import SYSTEMD_RUNNING, Runner, Systemd, run_systemctl
from agent.servicectl.errors import ActionFailed, ActionNotAllowed, StateChanged
from agent.servicectl.policy import ACTIONS, ServiceRule, ServicesConfig
from agent.servicectl.state import FAILED, RUNNING, STOPPED, ServiceState

KIND = "service.control"
CHANGES = ("start", "stop", "restart", "reload")
_CONSENT = frozenset({"stop", "restart"})
_EXPECTED = {"start": RUNNING, "stop": STOPPED, "restart": RUNNING, "reload": RUNNING}
_POLL = 0.1


class Backend(Protocol):
    def status(self) -> ServiceState: ...
    def act(self, action: str) -> None: ...


@dataclass(frozen=True)
class Host:
    """How to reach the host's services: clock and sleep for waits, the systemctl door."""

    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    systemctl: Runner = run_systemctl
    systemd_marker: Path = field(default=SYSTEMD_RUNNING)

    def backend(self, rule: ServiceRule) -> Backend:
        if rule.backend == "systemd":
            return Systemd(rule, self.systemctl, self.systemd_marker)
        return Process(rule, self.clock, self.sleep)


@dataclass(frozen=True)
class ServicePreview:
    """What an apply will do, from which state, and the digest the customer signs."""

    name: str
    action: str
    current: ServiceState
    expected: str
    needs_consent: bool
    digest: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "action": self.action, "current": self.current.to_dict(),
                "expected": self.expected, "needs_consent": self.needs_consent,
                "digest": self.digest}


def needs_consent(action: str) -> bool:
    """Whether ``action`` needs consent to its preview's digest: stop and restart do."""
    if action not in ACTIONS:
        raise ActionNotAllowed(f"{action[:40]!r} is not a service action")
    return action in _CONSENT


def status(config: ServicesConfig, name: str, host: Host | None = None) -> dict[str, Any]:
    """The service's state (running, stopped, failed, starting, stopping), pid and since."""
    rule = _allowed(config, name, "status")
    return {"name": name, "backend": rule.backend,
            **(host or Host()).backend(rule).status().to_dict()}


def preview(config: ServicesConfig, name: str, action: str,
            host: Host | None = None) -> ServicePreview:
    """The current state, the state expected after ``action``, and the digest."""
    if action not in CHANGES:
        raise ActionNotAllowed(f"{action[:40]!r} is not start, stop, restart or reload")
    rule = _allowed(config, name, action)
    current = (host or Host()).backend(rule).status()
    if action == "reload" and current.state != RUNNING:
        raise ActionFailed(f"{name}: cannot reload, the service is {current.state}")
    return ServicePreview(name, action, current, _EXPECTED[action], needs_consent(action),
                          digest(name, action, current))


def apply(config: ServicesConfig, preview: ServicePreview,
          host: Host | None = None) -> dict[str, Any]:
    """Do the previewed action and verify its result; StateChanged if the service moved."""
    host = host or Host()
    rule = _allowed(config, preview.name, preview.action)
    if digest(preview.name, preview.action, preview.current) != preview.digest:
        raise StateChanged(f"{preview.name}: the preview does not match its digest")
    backend = host.backend(rule)
    before = backend.status()
    if before.identity() != preview.current.identity():
        raise StateChanged(f"{preview.name}: the service is {_describe(before)} now, not "
                           f"{_describe(preview.current)} as previewed; nothing was done")
    started = host.clock()
    backend.act(preview.action)
    after = _verify(backend, rule, preview, host)
    return {"name": preview.name, "action": preview.action, "digest": preview.digest,
            "before": before.to_dict(), "after": after.to_dict(), "verified": True,
            "seconds": round(host.clock() - started, 3)}


def digest(name: str, action: str, current: ServiceState) -> str:
    body = {"kind": KIND, "name": name, "action": action, "current": current.identity()}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def reached(action: str, before: ServiceState, now: ServiceState) -> bool:
    """Whether ``now`` is the result ``action`` asked for, starting from ``before``."""
    if action == "stop":
        return now.state in (STOPPED, FAILED)
    if now.state != RUNNING:
        return False
    if action == "restart" and before.state == RUNNING and before.pid is not None:
        return now.pid is not None and now.pid != before.pid
    if action == "reload" and before.pid is not None:
        return now.pid == before.pid
    return True


def _verify(backend: Backend, rule: ServiceRule, preview: ServicePreview,
            host: Host) -> ServiceState:
    deadline = host.clock() + rule.verify_timeout
    while True:
        now = backend.status()
        if reached(preview.action, preview.current, now):
            return now
        if host.clock() >= deadline:
            raise ActionFailed(f"{preview.name}: {preview.action} was not verified within "
                               f"{rule.verify_timeout:g} s; the service is {_describe(now)}")
        host.sleep(_POLL)


def _allowed(config: ServicesConfig, name: str, action: str) -> ServiceRule:
    rule = config.rule(name)
    if action not in rule.actions:
        raise ActionNotAllowed(f"{name}: {action[:40]!r} is not allowed for this service")
    return rule


def _describe(state: ServiceState) -> str:
    return state.state if state.pid is None else f"{state.state} (pid {state.pid})"
