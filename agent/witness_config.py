"""How often the logs are witnessed: the optional ``[witness]`` section of agent.toml.

::

    [witness]
    interval_seconds = 60       # a round at least this often (default 60, 1..3600)

The sync loop also runs a round whenever the agent's log grew (see :mod:`agent.witness`),
so the interval bounds how stale the controller's cosignature of an idle log may be.
Pure: the parser raises :class:`WitnessConfigInvalid` (a ``ValueError``), which
``agent.config`` reports as a ``ConfigInvalid`` of agent.toml.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_INTERVAL = 60
MIN_INTERVAL = 1
MAX_INTERVAL = 3600
_KEYS = frozenset({"interval_seconds"})


class WitnessConfigInvalid(ValueError):
    """The [witness] section breaks a rule; the message names the key."""


@dataclass(frozen=True)
class WitnessConfig:
    """The customer's witnessing settings."""

    interval_seconds: int = DEFAULT_INTERVAL


def parse(table: Mapping[str, Any]) -> WitnessConfig:
    """The [witness] table, validated; raise WitnessConfigInvalid on any fault."""
    unknown = set(table) - _KEYS
    if unknown:
        raise WitnessConfigInvalid(f"unknown key in [witness]: {', '.join(sorted(unknown))}")
    value = table.get("interval_seconds", DEFAULT_INTERVAL)
    if isinstance(value, bool) or not isinstance(value, int) \
            or not MIN_INTERVAL <= value <= MAX_INTERVAL:
        raise WitnessConfigInvalid(f"witness.interval_seconds must be an integer from "
                                   f"{MIN_INTERVAL} to {MAX_INTERVAL}")
    return WitnessConfig(interval_seconds=value)


def to_toml(config: WitnessConfig) -> dict[str, Any]:
    """The [witness] table for ``config``; empty when everything is the default."""
    if config.interval_seconds == DEFAULT_INTERVAL:
        return {}
    return {"interval_seconds": config.interval_seconds}
