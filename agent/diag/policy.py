"""What the customer lets engineers see: the ``[diag]`` section of agent.toml.

::

    [diag]
    log_files = ["/var/log/app/app.log"]        # logs.tail, logs.search by "path"
    journald_units = ["nginx.service"]           # logs.tail, logs.search by "unit"
    file_roots = ["/etc/app", "/srv/app/conf"]   # files.stat, files.hash at or below these
    connect_allow = ["db.internal:5432", "*.example.com:443", "10.0.0.7:22", "[::1]:8080"]
    max_hash_bytes = 1073741824                  # files.hash refuses larger files (1 GiB)
    redact_patterns = ["ACME-[0-9]{8}",          # hidden from command lines and logs too
                       { name = "ticket", pattern = "TCK/[0-9]+" }]

    [[diag.data_sources]]                        # diag.database by "name"
    name = "main"
    engine = "postgresql"                        # host, database, user required
    host = "db.internal"                         # a host name, an IP or a socket directory
    port = 5432                                  # default 5432
    database = "app"
    user = "monitor"
    password = "..."                             # optional; never leaves the agent

    [[diag.data_sources]]
    name = "cache"
    engine = "sqlite"
    path = "/srv/app/cache.db"                   # opened read-only

Everything is denied unless listed. Without a ``[diag]`` section no log file, journald
unit or path can be read, and ``diag.connect`` refuses every target, loopback included.
``connect_allow`` entries are ``host:port`` with an exact port; ``*.example.com`` matches
names ending in ``.example.com`` at any depth (not ``example.com`` itself). A DNS
check may resolve a name that some entry's host matches, whatever its port. Names are
compared as written (case and one trailing dot aside), never by what they resolve to.

Log files are allowlisted by their exact absolute path; the file itself must not be a
symbolic link (list the link's target instead). File roots are absolute directories;
a path is inside a root when its real path (symbolic links resolved) is.

``redact_patterns`` are RE2 regular expressions, each a string or a table with
``pattern`` and an optional ``name`` (see :mod:`agent.redact_custom`); a pattern that RE2
cannot run in linear time (backreferences, lookaround) is refused here.

Pure: the parser raises :class:`DiagConfigInvalid` (a ``ValueError``), which
``agent.config`` reports as a ``ConfigInvalid`` of agent.toml.
"""

from __future__ import annotations

import ipaddress
import os.path
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.redact_custom import NO_PATTERNS, CustomPattern, CustomRedaction, PatternInvalid

DEFAULT_MAX_HASH_BYTES = 1 << 30
_MAX_HASH_LIMIT = 1 << 50
_KEYS = frozenset({"log_files", "journald_units", "file_roots", "connect_allow",
                   "max_hash_bytes", "data_sources", "redact_patterns"})
ENGINES = ("postgresql", "sqlite")
_SOURCE_KEYS = {"postgresql": frozenset({"name", "engine", "host", "port", "database", "user",
                                         "password"}),
                "sqlite": frozenset({"name", "engine", "path"})}
_SOURCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
# systemd unit names: letters, digits and ":-_.\@"; no globs, never starting with "-".
_UNIT = re.compile(r"[A-Za-z0-9:_.@\\][A-Za-z0-9:_.@\\-]{0,255}")


class DiagConfigInvalid(ValueError):
    """The [diag] section breaks a rule; the message names the key."""


def normalize_host(host: str) -> str | None:
    """``host`` lowercased, without a trailing dot, IPv6 in canonical form; None if invalid."""
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            return str(ipaddress.IPv6Address(host))
        except ValueError:
            return None
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    name = host.lower().removesuffix(".")
    if not name or len(name) > 253 or not all(_LABEL.fullmatch(label)
                                              for label in name.split(".")):
        return None
    return name


def split_host_port(value: str) -> tuple[str, int] | None:
    """``("host", port)`` of ``host:port`` or ``[v6]:port``; None if malformed."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not port.isascii() or not 0 < int(port) <= 65535:
        return None
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        return None
    return host, int(port)


@dataclass(frozen=True)
class ConnectRule:
    """One ``connect_allow`` entry: a host (or ``*.suffix``) and an exact port."""

    host: str
    port: int
    wildcard: bool = False

    @classmethod
    def parse(cls, entry: str) -> ConnectRule:
        parts = split_host_port(entry)
        if parts is None:
            raise DiagConfigInvalid(f"diag.connect_allow: {entry!r} is not host:port")
        host, port = parts
        wildcard = host.startswith("*.")
        name = normalize_host(host[2:] if wildcard else host)
        if name is None or (wildcard and _is_ip(name)):
            raise DiagConfigInvalid(f"diag.connect_allow: {entry!r} has an invalid host")
        return cls(name, port, wildcard)

    def matches_host(self, host: str) -> bool:
        """Whether a normalized host name matches this rule's host."""
        return host.endswith("." + self.host) if self.wildcard else host == self.host


@dataclass(frozen=True)
class DataSource:
    """One ``[[diag.data_sources]]`` entry. The password is kept out of ``repr``."""

    name: str
    engine: str
    host: str = ""
    port: int = 5432
    database: str = ""
    user: str = ""
    password: str | None = field(default=None, repr=False)
    path: str = ""

    @classmethod
    def parse(cls, entry: Any, index: int) -> DataSource:
        where = f"diag.data_sources[{index}]"
        if not isinstance(entry, dict):
            raise DiagConfigInvalid(f"{where} must be a table")
        engine = entry.get("engine")
        if engine not in ENGINES:
            raise DiagConfigInvalid(f"{where}.engine must be \"postgresql\" or \"sqlite\"")
        unknown = set(entry) - _SOURCE_KEYS[engine]
        if unknown:
            raise DiagConfigInvalid(f"unknown key in {where} ({engine}): "
                                    f"{', '.join(sorted(unknown))}")
        name = entry.get("name")
        if not isinstance(name, str) or not _SOURCE_NAME.fullmatch(name):
            raise DiagConfigInvalid(f"{where}.name must be 1 to 64 letters, digits, '_', '.' "
                                    "or '-', starting with a letter or digit")
        if engine == "sqlite":
            path = entry.get("path")
            if not isinstance(path, str):
                raise DiagConfigInvalid(f"{where}.path is required (a string)")
            return cls(name, engine, path=_absolute(path, f"data_sources[{index}].path"))
        host, database, user = (_source_text(entry, key, where)
                                for key in ("host", "database", "user"))
        if not host.startswith("/") and normalize_host(host) is None:
            raise DiagConfigInvalid(f"{where}.host must be a host name, an IP address or "
                                    "an absolute socket directory")
        port = entry.get("port", 5432)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port <= 65535:
            raise DiagConfigInvalid(f"{where}.port must be an integer from 1 to 65535")
        password = entry.get("password")
        if password is not None and (not isinstance(password, str) or "\x00" in password):
            raise DiagConfigInvalid(f"{where}.password must be a string")
        return cls(name, engine, host=host, port=port, database=database, user=user,
                   password=password)

    def to_toml(self) -> dict[str, Any]:
        if self.engine == "sqlite":
            return {"name": self.name, "engine": self.engine, "path": self.path}
        table: dict[str, Any] = {"name": self.name, "engine": self.engine, "host": self.host,
                                 "port": self.port, "database": self.database,
                                 "user": self.user}
        if self.password is not None:
            table["password"] = self.password
        return table


@dataclass(frozen=True)
class DiagConfig:
    """The customer's allowlists. Entries are validated and normalized on parse."""

    log_files: tuple[str, ...] = ()
    journald_units: tuple[str, ...] = ()
    file_roots: tuple[str, ...] = ()
    connect_allow: tuple[str, ...] = ()
    max_hash_bytes: int = DEFAULT_MAX_HASH_BYTES
    data_sources: tuple[DataSource, ...] = ()
    redact_patterns: CustomRedaction = NO_PATTERNS

    def data_source(self, name: str) -> DataSource | None:
        """The configured data source called ``name``, if any."""
        return next((s for s in self.data_sources if s.name == name), None)

    def rules(self) -> tuple[ConnectRule, ...]:
        return tuple(ConnectRule.parse(entry) for entry in self.connect_allow)

    def allows_connect(self, host: str, port: int) -> bool:
        """Whether ``host:port`` may be contacted (``host`` as given by the engineer)."""
        name = normalize_host(host)
        return name is not None and any(r.port == port and r.matches_host(name)
                                        for r in self.rules())

    def allows_name(self, host: str) -> bool:
        """Whether ``host`` may be resolved: some rule's host matches it."""
        name = normalize_host(host)
        return name is not None and any(r.matches_host(name) for r in self.rules())


def parse(table: Mapping[str, Any]) -> DiagConfig:
    """The [diag] table, validated; raise DiagConfigInvalid on any fault."""
    unknown = set(table) - _KEYS
    if unknown:
        raise DiagConfigInvalid(f"unknown key in [diag]: {', '.join(sorted(unknown))}")
    config = DiagConfig(
        log_files=tuple(_absolute(p, "log_files") for p in _strings(table, "log_files")),
        journald_units=tuple(_unit(u) for u in _strings(table, "journald_units")),
        file_roots=tuple(_absolute(p, "file_roots") for p in _strings(table, "file_roots")),
        connect_allow=_strings(table, "connect_allow"),
        max_hash_bytes=_max_hash(table.get("max_hash_bytes", DEFAULT_MAX_HASH_BYTES)),
        data_sources=_data_sources(table.get("data_sources", [])),
        redact_patterns=_redact_patterns(table.get("redact_patterns", [])),
    )
    config.rules()  # validates every connect_allow entry
    return config


def to_toml(config: DiagConfig) -> dict[str, Any]:
    """The [diag] table for ``config``; empty when everything is the default."""
    table: dict[str, Any] = {}
    for key in ("log_files", "journald_units", "file_roots", "connect_allow"):
        if getattr(config, key):
            table[key] = list(getattr(config, key))
    if config.max_hash_bytes != DEFAULT_MAX_HASH_BYTES:
        table["max_hash_bytes"] = config.max_hash_bytes
    if config.data_sources:
        table["data_sources"] = [source.to_toml() for source in config.data_sources]
    if config.redact_patterns:
        table["redact_patterns"] = [
            p.pattern if p.name is None else {"name": p.name, "pattern": p.pattern}
            for p in config.redact_patterns.patterns]
    return table


def _redact_patterns(entries: Any) -> CustomRedaction:
    if not isinstance(entries, list):
        raise DiagConfigInvalid("diag.redact_patterns must be a list of patterns")
    try:
        return CustomRedaction(tuple(_redact_pattern(entry, f"diag.redact_patterns[{i}]")
                                     for i, entry in enumerate(entries)))
    except PatternInvalid as exc:
        raise DiagConfigInvalid(str(exc)) from exc


def _redact_pattern(entry: Any, where: str) -> CustomPattern:
    """A string, or a table with ``pattern`` and an optional ``name``."""
    if isinstance(entry, dict) and not set(entry) - {"name", "pattern"}:
        pattern, name = entry.get("pattern"), entry.get("name")
    else:
        pattern, name = entry, None
    if not isinstance(pattern, str) or not (name is None or isinstance(name, str)):
        raise DiagConfigInvalid(f"{where} must be a pattern string or a table with "
                                "pattern and an optional name (strings)")
    return CustomPattern.compile(pattern, name, where)


def _data_sources(entries: Any) -> tuple[DataSource, ...]:
    if not isinstance(entries, list):
        raise DiagConfigInvalid("diag.data_sources must be an array of tables "
                                "([[diag.data_sources]])")
    sources = tuple(DataSource.parse(entry, i) for i, entry in enumerate(entries))
    names = [s.name for s in sources]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DiagConfigInvalid(f"diag.data_sources: duplicate name {', '.join(duplicates)}")
    return sources


def _source_text(entry: Mapping[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not 0 < len(value) <= 255 \
            or any(c in value for c in "\x00\r\n"):
        raise DiagConfigInvalid(f"{where}.{key} is required: a string of 1 to 255 characters")
    return value


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _strings(table: Mapping[str, Any], key: str) -> tuple[str, ...]:
    values = table.get(key, [])
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise DiagConfigInvalid(f"diag.{key} must be a list of strings")
    return tuple(dict.fromkeys(values))  # duplicates are harmless: keep the first


def _absolute(path: str, key: str) -> str:
    if "\x00" in path or not os.path.isabs(path) or ".." in path.split("/"):
        raise DiagConfigInvalid(f"diag.{key}: {path!r} must be an absolute path without '..'")
    return os.path.normpath(path)


def _unit(name: str) -> str:
    if not _UNIT.fullmatch(name):
        raise DiagConfigInvalid(f"diag.journald_units: {name!r} is not a systemd unit name")
    return name


def _max_hash(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= _MAX_HASH_LIMIT:
        raise DiagConfigInvalid(f"diag.max_hash_bytes must be an integer from 1 to "
                                f"{_MAX_HASH_LIMIT}")
    return value
