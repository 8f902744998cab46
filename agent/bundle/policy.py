"""How large a support bundle may be: the optional ``[bundle]`` section of agent.toml.

::

    [bundle]
    max_bytes = 67108864        # the archive never exceeds this (default 64 MiB)
    configs = false             # may a bundle copy files under [diag] file_roots? (default no)

``configs`` is the customer's opt-in to copying the contents of the files under ``[diag]
file_roots`` into bundles: no scope allows reading them otherwise (``diag.files`` is
stat and hash only). Even with it, a bundle holds them only for a grant with
``diag.files``; its log tails need ``diag.logs`` (see :mod:`agent.bundle.operation`).

The limit is the customer's: an engineer cannot raise it. A bundle that would exceed it
loses log lines first, then whole logs, then configuration files, and its manifest says
what was left out (see :mod:`agent.bundle.collect`). The operation's own output limit
bounds it too. Pure: the parser raises :class:`BundleConfigInvalid` (a ``ValueError``),
which ``agent.config`` reports as a ``ConfigInvalid`` of agent.toml.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MIB = 1024 * 1024
DEFAULT_MAX_BYTES = 64 * MIB
MIN_MAX_BYTES = 1 * MIB
MAX_MAX_BYTES = 1024 * MIB  # the operation's output limit: no bundle is ever larger
_KEYS = frozenset({"max_bytes", "configs"})


class BundleConfigInvalid(ValueError):
    """The [bundle] section breaks a rule; the message names the key."""


@dataclass(frozen=True)
class BundleConfig:
    """The customer's limits for support bundles."""

    max_bytes: int = DEFAULT_MAX_BYTES
    configs: bool = False


def parse(table: Mapping[str, Any]) -> BundleConfig:
    """The [bundle] table, validated; raise BundleConfigInvalid on any fault."""
    unknown = set(table) - _KEYS
    if unknown:
        raise BundleConfigInvalid(f"unknown key in [bundle]: {', '.join(sorted(unknown))}")
    value = table.get("max_bytes", DEFAULT_MAX_BYTES)
    if isinstance(value, bool) or not isinstance(value, int) \
            or not MIN_MAX_BYTES <= value <= MAX_MAX_BYTES:
        raise BundleConfigInvalid(f"bundle.max_bytes must be an integer from {MIN_MAX_BYTES} "
                                  f"to {MAX_MAX_BYTES}")
    configs = table.get("configs", False)
    if not isinstance(configs, bool):
        raise BundleConfigInvalid("bundle.configs must be true or false")
    return BundleConfig(max_bytes=value, configs=configs)


def to_toml(config: BundleConfig) -> dict[str, Any]:
    """The [bundle] table for ``config``; empty when everything is the default."""
    table: dict[str, Any] = {}
    if config.max_bytes != DEFAULT_MAX_BYTES:
        table["max_bytes"] = config.max_bytes
    if config.configs:
        table["configs"] = True
    return table
