"""The approver keys the agent trusts, re-read from agent.toml when the file changes,
and the grants already verified under them.

Fails closed: if the file becomes unreadable or invalid, no approver is trusted until
it is fixed, so a botched edit that meant to remove a key can never keep it trusted.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import MappingProxyType

from agent import config as agent_config
from agent.config import PinnedApprover
from permissions import (
    AgentTrust,
    Envelope,
    Grant,
    PermissionsError,
    PublicKey,
    decode_key,
    public_key_bytes,
)

_log = logging.getLogger("agent.trust")


class PinnedTrust:
    """``current()`` gives the trust of the moment; cheap enough to call per operation."""

    def __init__(self, home: Path, agent_id: str) -> None:
        self._home = home
        self._path = home / agent_config.CONFIG_NAME
        self._agent_id = agent_id
        self._stamp: tuple[int, int, int] | None = None
        self._approvers: tuple[PinnedApprover, ...] = ()
        self._trust = AgentTrust(agent_id, MappingProxyType({}))
        self.refresh()

    @property
    def agent_id(self) -> str:
        return self._agent_id

    def approvers(self) -> tuple[PinnedApprover, ...]:
        self.refresh()
        return self._approvers

    def current(self) -> AgentTrust:
        """The trust of the moment: one stat of agent.toml, keys decoded once per change."""
        self.refresh()
        return self._trust

    def refresh(self) -> None:
        """Re-read agent.toml if its modification time changed since the last read."""
        try:
            info = self._path.stat()
            # The inode changes on every atomic save even when mtime granularity hides it.
            stamp = (info.st_mtime_ns, info.st_ino, info.st_size)
        except OSError:
            stamp = (-1, -1, -1)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            approvers = agent_config.load(self._home).approvers
            trust = AgentTrust(self._agent_id,
                               MappingProxyType({a.key_id: a.key() for a in approvers}))
        except (agent_config.ConfigError, ValueError) as exc:
            self._approvers, self._trust = (), AgentTrust(self._agent_id, MappingProxyType({}))
            _log.error("no approver is trusted until agent.toml is fixed: %s", exc)
            return
        self._approvers, self._trust = approvers, trust
        _log.info("pinned approvers loaded",
                  extra={"fields": {"approvers": [a.name for a in self._approvers]}})


class VerifiedGrants:
    """Grants whose approver signature verified, kept so that it is checked once.

    An entry is keyed by the exact grant envelope (type, payload bytes, signatures) and
    the exact set of pinned approver keys (ids and raw key bytes) it verified under: a
    change of the pinned approvers in agent.toml misses the cache and verifies afresh.
    Only the signature check is kept; everything that depends on time, revocation or the
    operation is decided again for every operation. Failed verifications are not kept.
    The engineer key the grant names is kept decoded alongside it.
    """

    def __init__(self, kept: int = 1024) -> None:
        self._kept = kept
        self._entries: dict[tuple[Envelope, frozenset[tuple[str, bytes]]],
                            tuple[Grant, PublicKey]] = {}

    def get(self, envelope: Envelope, trust: AgentTrust) -> tuple[Grant, PublicKey] | None:
        """The grant and its engineer key, if ``envelope`` verified under ``trust`` before."""
        return self._entries.get((envelope, _pins(trust)))

    def add(self, envelope: Envelope, trust: AgentTrust, grant: Grant) -> None:
        """Keep ``grant``, which ``permissions`` verified from ``envelope`` under ``trust``."""
        try:
            engineer_key = decode_key(grant.engineer_key)  # checked by Grant.from_payload
        except PermissionsError:
            return  # not kept: every operation then goes through the kernel from scratch
        if len(self._entries) >= self._kept:
            self._entries.clear()  # rare: that many grants or key sets; start over
        self._entries[(envelope, _pins(trust))] = (grant, engineer_key)


def _pins(trust: AgentTrust) -> frozenset[tuple[str, bytes]]:
    return frozenset((key_id, public_key_bytes(key))
                     for key_id, key in trust.approver_keys.items())
