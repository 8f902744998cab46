"""A service's observed state, the same shape for every backend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

RUNNING = "running"
STOPPED = "stopped"
FAILED = "failed"
STARTING = "starting"
STOPPING = "stopping"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class ServiceState:
    """``state`` is one of the constants above; ``pid`` the main process (None when not
    known or not running); ``since`` the Unix time of the last change, when known;
    ``detail`` a backend's own word (systemd's sub-state, why a process counts as failed)."""

    state: str
    pid: int | None = None
    since: float | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "pid": self.pid, "since": self.since, "detail": self.detail}

    def identity(self) -> dict[str, Any]:
        """What a consent binds to: the state and the main process."""
        return {"state": self.state, "pid": self.pid}
