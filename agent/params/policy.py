"""Which configuration files and keys engineers may change: ``[[params.files]]`` in agent.toml.

::

    [[params.files]]
    name = "app"                               # what engineers name; they never send paths
    path = "/etc/app/app.toml"                 # absolute; must be a regular file, not a link
    format = "toml"                            # ini, toml, json, yaml or kv (key=value lines)
    keys = ["server.port", "log.level"]        # dotted paths; INI: "section.key"; kv: the key
    validate = ["/usr/sbin/nginx", "-t"]       # optional: run after the write, no shell
    validate_timeout_seconds = 30              # default 30, at most 600
    backup_dir = "/var/backups/app-params"     # default: <agent home>/params-backups/<name>
    max_bytes = 1048576                        # larger files are refused (default 1 MiB)

Nothing is changeable unless listed. In TOML, JSON and YAML a key is a path of
mapping keys joined by dots; in INI the part after the last dot is the option and the
rest the section (an option before any section is named alone); in kv files the key is
the whole name. Pure: the parser raises :class:`ParamsConfigInvalid`.
"""

from __future__ import annotations

import os.path
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.params.errors import ParamsConfigInvalid, UnknownParamFile

FORMATS = ("ini", "toml", "json", "yaml", "kv")
DEFAULT_TIMEOUT = 30.0
MAX_TIMEOUT = 600.0
DEFAULT_MAX_BYTES = 1 << 20
_MAX_BYTES_LIMIT = 64 << 20
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@/-]{0,254}")
_ENTRY_KEYS = frozenset({"name", "path", "format", "keys", "validate",
                         "validate_timeout_seconds", "backup_dir", "max_bytes"})


@dataclass(frozen=True)
class ParamFile:
    """One allowlisted file, validated and normalized."""

    name: str
    path: str
    format: str
    keys: tuple[str, ...]
    validate: tuple[str, ...] = ()
    validate_timeout: float = DEFAULT_TIMEOUT
    backup_dir: str | None = None
    max_bytes: int = DEFAULT_MAX_BYTES

    def to_toml(self) -> dict[str, Any]:
        table: dict[str, Any] = {"name": self.name, "path": self.path, "format": self.format,
                                 "keys": list(self.keys)}
        if self.validate:
            table["validate"] = list(self.validate)
        if self.validate_timeout != DEFAULT_TIMEOUT:
            table["validate_timeout_seconds"] = self.validate_timeout
        if self.backup_dir is not None:
            table["backup_dir"] = self.backup_dir
        if self.max_bytes != DEFAULT_MAX_BYTES:
            table["max_bytes"] = self.max_bytes
        return table


@dataclass(frozen=True)
class ParamsConfig:
    """Every allowlisted file; empty means no parameter may be changed."""

    files: tuple[ParamFile, ...] = ()

    def file(self, name: str) -> ParamFile:
        """The file called ``name``; UnknownParamFile if none is."""
        for entry in self.files:
            if entry.name == name:
                return entry
        raise UnknownParamFile(f"no parameter file named {name!r} is allowlisted")


def parse(table: Mapping[str, Any]) -> ParamsConfig:
    """The [params] table, validated; raise ParamsConfigInvalid on any fault."""
    unknown = set(table) - {"files"}
    if unknown:
        raise ParamsConfigInvalid(f"unknown key in [params]: {', '.join(sorted(unknown))}")
    entries = table.get("files", [])
    if not isinstance(entries, list):
        raise ParamsConfigInvalid("params.files must be an array of tables ([[params.files]])")
    files = tuple(_file(entry, i) for i, entry in enumerate(entries))
    names = [f.name for f in files]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ParamsConfigInvalid(f"params.files: duplicate name {', '.join(duplicates)}")
    return ParamsConfig(files)


def to_toml(config: ParamsConfig) -> dict[str, Any]:
    """The [params] table in normal form; empty when nothing is allowlisted."""
    return {"files": [f.to_toml() for f in config.files]} if config.files else {}


def _file(entry: Any, index: int) -> ParamFile:
    where = f"params.files[{index}]"
    if not isinstance(entry, dict):
        raise ParamsConfigInvalid(f"{where} must be a table")
    unknown = set(entry) - _ENTRY_KEYS
    if unknown:
        raise ParamsConfigInvalid(f"unknown key in {where}: {', '.join(sorted(unknown))}")
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ParamsConfigInvalid(f"{where}.name must be 1 to 64 letters, digits, '_', '.' or "
                                  "'-', starting with a letter or digit")
    fmt = entry.get("format")
    if fmt not in FORMATS:
        raise ParamsConfigInvalid(f"{where}.format must be one of {', '.join(FORMATS)}")
    backup_dir = entry.get("backup_dir")
    return ParamFile(
        name=name, path=_absolute(entry.get("path"), f"{where}.path"), format=fmt,
        keys=_keys(entry.get("keys"), fmt, where), validate=_argv(entry.get("validate"), where),
        validate_timeout=_timeout(entry.get("validate_timeout_seconds", DEFAULT_TIMEOUT), where),
        backup_dir=None if backup_dir is None else _absolute(backup_dir, f"{where}.backup_dir"),
        max_bytes=_max_bytes(entry.get("max_bytes", DEFAULT_MAX_BYTES), where))


def _absolute(path: Any, where: str) -> str:
    if not isinstance(path, str) or "\x00" in path or not os.path.isabs(path) \
            or ".." in path.split("/"):
        raise ParamsConfigInvalid(f"{where} must be an absolute path without '..'")
    return os.path.normpath(path)


def _keys(keys: Any, fmt: str, where: str) -> tuple[str, ...]:
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        raise ParamsConfigInvalid(f"{where}.keys must be a non-empty list of strings")
    for key in keys:
        dotted = fmt not in ("kv", "ini")
        if not _KEY.fullmatch(key) or (dotted and "" in key.split(".")) \
                or key.endswith("."):
            raise ParamsConfigInvalid(f"{where}.keys: {key!r} is not a valid key path")
    return tuple(dict.fromkeys(keys))


def _argv(argv: Any, where: str) -> tuple[str, ...]:
    if argv is None:
        return ()
    if not isinstance(argv, list) or not argv or not all(
            isinstance(a, str) and "\x00" not in a for a in argv):
        raise ParamsConfigInvalid(f"{where}.validate must be a non-empty list of strings "
                                  "(an argument vector; no shell)")
    if not os.path.isabs(argv[0]):
        raise ParamsConfigInvalid(f"{where}.validate: the program must be an absolute path")
    return tuple(argv)


def _timeout(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not 0 < value <= MAX_TIMEOUT:
        raise ParamsConfigInvalid(f"{where}.validate_timeout_seconds must be a number above 0 "
                                  f"and at most {MAX_TIMEOUT:g}")
    return float(value)


def _max_bytes(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) \
            or not 0 < value <= _MAX_BYTES_LIMIT:
        raise ParamsConfigInvalid(f"{where}.max_bytes must be an integer from 1 to "
                                  f"{_MAX_BYTES_LIMIT}")
    return value
