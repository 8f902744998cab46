"""The inspection profile: the ``[inspect]`` section of agent.toml.

::

    [inspect]
    enabled = true
    interval_seconds = 300            # default 300, at least 30
    disk_percent = 90                 # every mount; [inspect.mounts] overrides per mount
    inode_percent = 90
    memory_percent = 90
    swap_percent = 80
    load_per_core = 2.0               # 1-minute load average divided by logical CPUs
    services = ["nginx.service"]      # systemd units that must be running
    certificates = ["example.com:443"]  # TLS endpoints checked for expiry
    certificate_days = 14             # ... must not expire within this many days
    clock_offset_seconds = 5          # against the controller
    data_sources = ["erp"]            # names of [[diag.data_sources]] that must be reachable

    [inspect.mounts."/var"]
    disk_percent = 80
    inode_percent = 85

Every threshold is optional: a check without one does not run. Without an ``[inspect]``
section, or with ``enabled = false``, nothing is inspected.

The shortest interval is :data:`MIN_INTERVAL` (30 s). A test deployment may lower it
with the environment variable ``RMAINT_INSPECT_MIN_INTERVAL`` of the agent process (see
:func:`min_interval`); agent.toml alone cannot.

Pure: :func:`parse` raises :class:`InspectProfileInvalid`, which ``agent.config``
reports as a ``ConfigInvalid`` of agent.toml.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_INTERVAL = 300.0
MIN_INTERVAL = 30.0
MIN_INTERVAL_ENV = "RMAINT_INSPECT_MIN_INTERVAL"
_FLOOR = 0.1  # even a test cannot ask for a busier loop than this
_UNIT = re.compile(r"[A-Za-z0-9:_.@\\-]{1,200}")
_SOURCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_PERCENTS = ("disk_percent", "inode_percent", "memory_percent", "swap_percent")
_KEYS = frozenset({"enabled", "interval_seconds", *_PERCENTS, "load_per_core", "services",
                   "certificates", "certificate_days", "clock_offset_seconds", "data_sources",
                   "mounts"})
_MOUNT_KEYS = frozenset({"disk_percent", "inode_percent"})


class InspectProfileInvalid(ValueError):
    """The [inspect] table breaks a rule; the message names the key."""


@dataclass(frozen=True)
class MountThresholds:
    """Per-mount overrides of disk and inode use (percent)."""

    mountpoint: str
    disk_percent: float | None = None
    inode_percent: float | None = None


@dataclass(frozen=True)
class InspectProfile:
    """What to check and the thresholds; validated and normalized on parse."""

    enabled: bool = False
    interval_seconds: float = DEFAULT_INTERVAL
    disk_percent: float | None = None
    inode_percent: float | None = None
    memory_percent: float | None = None
    swap_percent: float | None = None
    load_per_core: float | None = None
    services: tuple[str, ...] = ()
    certificates: tuple[str, ...] = ()
    certificate_days: float | None = None
    clock_offset_seconds: float | None = None
    data_sources: tuple[str, ...] = ()
    mounts: tuple[MountThresholds, ...] = field(default=())

    def mount(self, mountpoint: str) -> tuple[float | None, float | None]:
        """(disk %, inode %) thresholds for ``mountpoint``: its override, else the default."""
        override = next((m for m in self.mounts if m.mountpoint == mountpoint), None)
        if override is None:
            return self.disk_percent, self.inode_percent
        disk = override.disk_percent if override.disk_percent is not None else self.disk_percent
        inode = (override.inode_percent if override.inode_percent is not None
                 else self.inode_percent)
        return disk, inode


def min_interval(environ: Mapping[str, str] | None = None) -> float:
    """The shortest interval allowed: 30 s, or what ``RMAINT_INSPECT_MIN_INTERVAL`` says."""
    value = (os.environ if environ is None else environ).get(MIN_INTERVAL_ENV, "")
    if not value:
        return MIN_INTERVAL
    try:
        return max(_FLOOR, float(value))
    except ValueError:
        return MIN_INTERVAL


def parse(table: Mapping[str, Any], *, data_sources: tuple[str, ...] = (),
          shortest: float = MIN_INTERVAL) -> InspectProfile:
    """The [inspect] table, validated; ``data_sources`` are the names [diag] configures."""
    unknown = set(table) - _KEYS
    if unknown:
        raise InspectProfileInvalid(f"unknown key in [inspect]: {', '.join(sorted(unknown))}")
    enabled = table.get("enabled", False)
    if not isinstance(enabled, bool):
        raise InspectProfileInvalid("inspect.enabled must be true or false")
    profile = InspectProfile(
        enabled=enabled,
        interval_seconds=_interval(table.get("interval_seconds", DEFAULT_INTERVAL), shortest),
        **{key: _percent(table, key) for key in _PERCENTS},
        load_per_core=_positive(table, "load_per_core", 1000.0),
        services=tuple(_names(table, "services", _UNIT, "a systemd unit name")),
        certificates=tuple(_endpoint(e) for e in _strings(table, "certificates")),
        certificate_days=_positive(table, "certificate_days", 3650.0),
        clock_offset_seconds=_positive(table, "clock_offset_seconds", 86400.0),
        data_sources=tuple(_names(table, "data_sources", _SOURCE, "a data source name")),
        mounts=_mounts(table.get("mounts", {})),
    )
    _check_consistent(profile, data_sources)
    return profile


def to_toml(profile: InspectProfile) -> dict[str, Any]:
    """The [inspect] table for ``profile``; empty when it is the default (disabled, unset)."""
    if profile == InspectProfile():
        return {}
    table: dict[str, Any] = {"enabled": profile.enabled,
                             "interval_seconds": profile.interval_seconds}
    for key in (*_PERCENTS, "load_per_core", "certificate_days", "clock_offset_seconds"):
        if getattr(profile, key) is not None:
            table[key] = getattr(profile, key)
    for key in ("services", "certificates", "data_sources"):
        if getattr(profile, key):
            table[key] = list(getattr(profile, key))
    if profile.mounts:
        table["mounts"] = {m.mountpoint: {k: getattr(m, k) for k in sorted(_MOUNT_KEYS)
                                          if getattr(m, k) is not None}
                           for m in profile.mounts}
    return table


def _check_consistent(profile: InspectProfile, data_sources: tuple[str, ...]) -> None:
    unknown = [name for name in profile.data_sources if name not in data_sources]
    if unknown:
        raise InspectProfileInvalid(f"inspect.data_sources: {', '.join(unknown)} not in "
                                    "[[diag.data_sources]]")
    if profile.certificates and profile.certificate_days is None:
        raise InspectProfileInvalid("inspect.certificates needs inspect.certificate_days")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _interval(value: Any, shortest: float) -> float:
    number = _number(value)
    if number is None or not shortest <= number <= 86400:
        raise InspectProfileInvalid(f"inspect.interval_seconds must be a number from "
                                    f"{shortest:g} to 86400")
    return number


def _percent(table: Mapping[str, Any], key: str, where: str = "inspect") -> float | None:
    if key not in table:
        return None
    number = _number(table[key])
    if number is None or not 0 < number <= 100:
        raise InspectProfileInvalid(f"{where}.{key} must be a percentage above 0, at most 100")
    return number


def _positive(table: Mapping[str, Any], key: str, limit: float) -> float | None:
    if key not in table:
        return None
    number = _number(table[key])
    if number is None or not 0 < number <= limit:
        raise InspectProfileInvalid(f"inspect.{key} must be a number above 0, at most "
                                    f"{limit:g}")
    return number


def _strings(table: Mapping[str, Any], key: str) -> tuple[str, ...]:
    values = table.get(key, [])
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise InspectProfileInvalid(f"inspect.{key} must be a list of strings")
    return tuple(dict.fromkeys(values))


def _names(table: Mapping[str, Any], key: str, pattern: re.Pattern[str],
           what: str) -> tuple[str, ...]:
    names = _strings(table, key)
    for name in names:
        if not pattern.fullmatch(name):
            raise InspectProfileInvalid(f"inspect.{key}: {name!r} is not {what}")
    return names


def _endpoint(entry: str) -> str:
    host, sep, port = entry.rpartition(":")
    if (not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535
            or any(c.isspace() or c in "/\x00" for c in host)):
        raise InspectProfileInvalid(f"inspect.certificates: {entry!r} is not host:port")
    return entry


def _mounts(table: Any) -> tuple[MountThresholds, ...]:
    if not isinstance(table, dict):
        raise InspectProfileInvalid("inspect.mounts must be a table of mount points")
    found = []
    for mountpoint, entry in table.items():
        where = f"inspect.mounts.{mountpoint!r}"
        if not mountpoint.startswith("/") or "\x00" in mountpoint:
            raise InspectProfileInvalid(f"{where}: a mount point is an absolute path")
        if not isinstance(entry, dict) or set(entry) - _MOUNT_KEYS or not entry:
            raise InspectProfileInvalid(f"{where} must set disk_percent and/or inode_percent")
        found.append(MountThresholds(mountpoint, _percent(entry, "disk_percent", where),
                                     _percent(entry, "inode_percent", where)))
    return tuple(found)
