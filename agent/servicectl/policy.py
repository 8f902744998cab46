"""Which services engineers may look at and control: ``[[services.allow]]`` in agent.toml.

::

    [[services.allow]]
    name = "web"                                  # what engineers name
    backend = "systemd"
    unit = "nginx.service"                        # default: the name
    actions = ["status", "reload", "restart"]     # of status, start, stop, restart, reload

    [[services.allow]]
    name = "worker"
    backend = "process"                           # a process the agent supervises itself
    start = ["/usr/bin/python3", "/srv/worker.py"]  # stays in the foreground; no shell
    pidfile = "/run/rmaint/worker.pid"            # written by the agent
    stop_signal = "SIGTERM"                       # default SIGTERM; SIGKILL after stop_timeout
    stop_timeout_seconds = 10                     # default 10
    reload_signal = "SIGHUP"                      # default SIGHUP
    actions = ["status", "start", "stop", "restart", "reload"]

    verify_timeout_seconds = 30                   # either backend: how long to wait for the state
    start_settle_seconds = 1                      # process: how long a start must stay up

Nothing is controllable unless listed; ``status`` too must be listed. Pure: the parser
raises :class:`ServicesConfigInvalid`.
"""

from __future__ import annotations

import os.path
import re
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.servicectl.errors import ServicesConfigInvalid, UnknownService

ACTIONS = ("status", "start", "stop", "restart", "reload")
BACKENDS = ("systemd", "process")
DEFAULT_VERIFY = 30.0
DEFAULT_STOP = 10.0
DEFAULT_SETTLE = 1.0
_MAX_SECONDS = 600.0
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
# systemd unit names: letters, digits and ":-_.\@"; never starting with "-" (not an option).
_UNIT = re.compile(r"[A-Za-z0-9:_.@\\][A-Za-z0-9:_.@\\-]{0,255}")
_COMMON = frozenset({"name", "backend", "actions", "verify_timeout_seconds"})
_KEYS = {"systemd": _COMMON | {"unit"},
         "process": _COMMON | {"start", "pidfile", "stop_signal", "stop_timeout_seconds",
                               "reload_signal", "start_settle_seconds"}}


@dataclass(frozen=True)
class ServiceRule:
    """One allowlisted service."""

    name: str
    backend: str
    actions: tuple[str, ...]
    verify_timeout: float = DEFAULT_VERIFY
    unit: str = ""
    start: tuple[str, ...] = ()
    pidfile: str = ""
    stop_signal: str = "SIGTERM"
    stop_timeout: float = DEFAULT_STOP
    reload_signal: str = "SIGHUP"
    start_settle: float = DEFAULT_SETTLE

    def to_toml(self) -> dict[str, Any]:
        table: dict[str, Any] = {"name": self.name, "backend": self.backend,
                                 "actions": list(self.actions)}
        if self.verify_timeout != DEFAULT_VERIFY:
            table["verify_timeout_seconds"] = self.verify_timeout
        if self.backend == "systemd":
            if self.unit != self.name:
                table["unit"] = self.unit
            return table
        table.update(start=list(self.start), pidfile=self.pidfile)
        defaults = (("stop_signal", "SIGTERM"), ("stop_timeout", DEFAULT_STOP),
                    ("reload_signal", "SIGHUP"), ("start_settle", DEFAULT_SETTLE))
        for attr, default in defaults:
            if getattr(self, attr) != default:
                key = attr if attr.endswith("signal") else f"{attr}_seconds"
                table[key] = getattr(self, attr)
        return table


@dataclass(frozen=True)
class ServicesConfig:
    """Every allowlisted service; empty means none may be touched."""

    allow: tuple[ServiceRule, ...] = ()

    def rule(self, name: str) -> ServiceRule:
        """The service called ``name``; UnknownService if none is."""
        for rule in self.allow:
            if rule.name == name:
                return rule
        raise UnknownService(f"no service named {name[:80]!r} is allowlisted")


def parse(table: Mapping[str, Any]) -> ServicesConfig:
    """The [services] table, validated; raise ServicesConfigInvalid on any fault."""
    unknown = set(table) - {"allow"}
    if unknown:
        raise ServicesConfigInvalid(f"unknown key in [services]: {', '.join(sorted(unknown))}")
    entries = table.get("allow", [])
    if not isinstance(entries, list):
        raise ServicesConfigInvalid("services.allow must be an array of tables "
                                    "([[services.allow]])")
    rules = tuple(_rule(entry, i) for i, entry in enumerate(entries))
    names = [r.name for r in rules]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ServicesConfigInvalid(f"services.allow: duplicate name {', '.join(duplicates)}")
    return ServicesConfig(rules)


def to_toml(config: ServicesConfig) -> dict[str, Any]:
    """The [services] table in normal form; empty when nothing is allowlisted."""
    return {"allow": [r.to_toml() for r in config.allow]} if config.allow else {}


def _rule(entry: Any, index: int) -> ServiceRule:
    where = f"services.allow[{index}]"
    if not isinstance(entry, dict):
        raise ServicesConfigInvalid(f"{where} must be a table")
    backend = entry.get("backend")
    if backend not in BACKENDS:
        raise ServicesConfigInvalid(f"{where}.backend must be \"systemd\" or \"process\"")
    unknown = set(entry) - _KEYS[backend]
    if unknown:
        raise ServicesConfigInvalid(f"unknown key in {where} ({backend}): "
                                    f"{', '.join(sorted(unknown))}")
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ServicesConfigInvalid(f"{where}.name must be 1 to 64 letters, digits, '_', '.', "
                                    "'@' or '-', starting with a letter or digit")
    common = {"name": name, "backend": backend, "actions": _actions(entry.get("actions"), where),
              "verify_timeout": _seconds(entry, "verify_timeout_seconds", DEFAULT_VERIFY, where)}
    if backend == "systemd":
        return ServiceRule(**common, unit=_unit(entry.get("unit", name), where))
    return ServiceRule(
        **common, start=_argv(entry.get("start"), where),
        pidfile=_absolute(entry.get("pidfile"), f"{where}.pidfile"),
        stop_signal=_signal(entry.get("stop_signal", "SIGTERM"), f"{where}.stop_signal"),
        stop_timeout=_seconds(entry, "stop_timeout_seconds", DEFAULT_STOP, where),
        reload_signal=_signal(entry.get("reload_signal", "SIGHUP"), f"{where}.reload_signal"),
        start_settle=_seconds(entry, "start_settle_seconds", DEFAULT_SETTLE, where))


def _actions(actions: Any, where: str) -> tuple[str, ...]:
    if not isinstance(actions, list) or not actions \
            or not all(isinstance(a, str) and a in ACTIONS for a in actions):
        raise ServicesConfigInvalid(f"{where}.actions must be a non-empty list of "
                                    f"{', '.join(ACTIONS)}")
    return tuple(a for a in ACTIONS if a in actions)  # normal form: the canonical order


def _unit(unit: Any, where: str) -> str:
    if not isinstance(unit, str) or not _UNIT.fullmatch(unit):
        raise ServicesConfigInvalid(f"{where}.unit must be a systemd unit name")
    return unit


def _argv(argv: Any, where: str) -> tuple[str, ...]:
    if not isinstance(argv, list) or not argv \
            or not all(isinstance(a, str) and "\x00" not in a for a in argv):
        raise ServicesConfigInvalid(f"{where}.start is required: a non-empty list of strings "
                                    "(an argument vector; no shell)")
    if not os.path.isabs(argv[0]):
        raise ServicesConfigInvalid(f"{where}.start: the program must be an absolute path")
    return tuple(argv)


def _absolute(path: Any, where: str) -> str:
    if not isinstance(path, str) or "\x00" in path or not os.path.isabs(path) \
            or ".." in path.split("/"):
        raise ServicesConfigInvalid(f"{where} is required: an absolute path without '..'")
    return os.path.normpath(path)


def _signal(name: Any, where: str) -> str:
    if not isinstance(name, str) or not name.startswith("SIG") \
            or not isinstance(getattr(signal, name, None), signal.Signals):
        raise ServicesConfigInvalid(f"{where} must be a signal name such as \"SIGTERM\"")
    return name


def _seconds(entry: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not 0 < value <= _MAX_SECONDS:
        raise ServicesConfigInvalid(f"{where}.{key} must be a number above 0 and at most "
                                    f"{_MAX_SECONDS:g}")
    return float(value)
