"""The customer's ``[shell]`` table in agent.toml: whether and how engineers may log in.

    [shell]
    user = "maint"            # required: the local account shells run as (no table: no shell)
    shell = "/bin/bash"       # the login program
    idle_timeout = 900        # seconds without input or output before the shell is ended
    max_duration = 14400      # seconds a shell may run at most

Shells also end when their grant expires or is revoked. :func:`parse` is pure and
strict; :func:`to_toml` writes the normal form back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.shell.errors import ShellPolicyInvalid

DEFAULT_SHELL = "/bin/bash"
DEFAULT_IDLE = 900.0
DEFAULT_MAX = 4 * 3600.0
_KEYS = {"user", "shell", "idle_timeout", "max_duration"}


@dataclass(frozen=True)
class ShellPolicy:
    """``user`` empty means interactive login is off (no ``[shell]`` table)."""

    user: str = ""
    shell: str = DEFAULT_SHELL
    idle_timeout: float = DEFAULT_IDLE
    max_duration: float = DEFAULT_MAX

    @property
    def enabled(self) -> bool:
        return bool(self.user)


def parse(table: Any) -> ShellPolicy:
    """The policy of a ``[shell]`` table; ``{}`` (no table) is the disabled policy."""
    if not isinstance(table, dict):
        raise ShellPolicyInvalid("[shell] must be a table")
    if not table:
        return ShellPolicy()
    unknown = set(table) - _KEYS
    if unknown:
        raise ShellPolicyInvalid(f"unknown key in [shell]: {', '.join(sorted(unknown))}")
    user = table.get("user")
    if not isinstance(user, str) or not user or not _plain(user):
        raise ShellPolicyInvalid("[shell] user is required: the local account shells run as")
    shell = table.get("shell", DEFAULT_SHELL)
    if not isinstance(shell, str) or not shell.startswith("/"):
        raise ShellPolicyInvalid("[shell] shell must be an absolute path")
    return ShellPolicy(user, shell, _seconds(table, "idle_timeout", DEFAULT_IDLE),
                       _seconds(table, "max_duration", DEFAULT_MAX))


def to_toml(policy: ShellPolicy) -> dict[str, Any]:
    """The normal form of ``policy`` (empty when disabled)."""
    if not policy.enabled:
        return {}
    return {"user": policy.user, "shell": policy.shell, "idle_timeout": policy.idle_timeout,
            "max_duration": policy.max_duration}


def _plain(user: str) -> bool:
    return all(c.isalnum() or c in "._-" for c in user) and not user.startswith("-")


def _seconds(table: dict[str, Any], key: str, default: float) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 1 <= value <= 86400:
        raise ShellPolicyInvalid(f"[shell] {key} must be a number of seconds from 1 to 86400")
    return float(value)
