"""The approver keys the agent trusts, re-read from agent.toml when the file changes.

Fails closed: if the file becomes unreadable or invalid, no approver is trusted until
it is fixed, so a botched edit that meant to remove a key can never keep it trusted.
"""

from __future__ import annotations

import logging
from pathlib import Path

from agent import config as agent_config
from agent.config import PinnedApprover
from permissions import AgentTrust

_log = logging.getLogger("agent.trust")


class PinnedTrust:
    """``current()`` gives the trust of the moment; cheap enough to call per operation."""

    def __init__(self, home: Path, agent_id: str) -> None:
        self._home = home
        self._agent_id = agent_id
        self._stamp: tuple[int, int, int] | None = None
        self._approvers: tuple[PinnedApprover, ...] = ()
        self.refresh()

    @property
    def agent_id(self) -> str:
        return self._agent_id

    def approvers(self) -> tuple[PinnedApprover, ...]:
        self.refresh()
        return self._approvers

    def current(self) -> AgentTrust:
        return AgentTrust(self._agent_id, {a.key_id: a.key() for a in self.approvers()})

    def refresh(self) -> None:
        """Re-read agent.toml if its modification time changed since the last read."""
        path = self._home / agent_config.CONFIG_NAME
        try:
            info = path.stat()
            # The inode changes on every atomic save even when mtime granularity hides it.
            stamp = (info.st_mtime_ns, info.st_ino, info.st_size)
        except OSError:
            stamp = (-1, -1, -1)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            self._approvers = agent_config.load(self._home).approvers
        except agent_config.ConfigError as exc:
            self._approvers = ()
            _log.error("no approver is trusted until agent.toml is fixed: %s", exc)
            return
        _log.info("pinned approvers loaded",
                  extra={"fields": {"approvers": [a.name for a in self._approvers]}})
