"""Which customer data engineers may read and correct: the ``[data]`` section of agent.toml.

::

    [[data.sources]]
    name = "shop"
    engine = "postgresql"            # "sqlite", "postgresql" or "mysql" (MariaDB, MySQL)
    host = "db.internal"             # postgresql, mysql: host, database, user required
    port = 5432                      # default 5432 (postgresql), 3306 (mysql)
    database = "shop"
    user = "maint"
    password = "..."                 # optional; never leaves the agent
    row_limit = 100                  # rows per query and per plan; at most 1000

    [[data.sources.tables]]
    name = "orders"
    columns = ["id", "customer", "status", "email"]   # what may be read and written
    masked = ["email"]               # shown as "***" in everything sent out

    [[data.sources]]
    name = "books"
    engine = "sqlite"
    path = "/srv/app/books.db"

Nothing is allowed unless listed: a table or column missing here does not exist for
engineers. The live catalog is checked again at every use (see :mod:`agent.data.schema`).

Pure: the parser raises :class:`DataConfigInvalid` (a ``ValueError``), which
``agent.config`` reports as a ``ConfigInvalid`` of agent.toml.
"""

from __future__ import annotations

import os.path
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ENGINES = ("sqlite", "postgresql", "mysql")
DEFAULT_ROW_LIMIT = 100
MAX_ROW_LIMIT = 1000
DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}
_COMMON = frozenset({"name", "engine", "row_limit", "tables"})
_KEYS = {"sqlite": _COMMON | {"path"},
         "postgresql": _COMMON | {"host", "port", "database", "user", "password"},
         "mysql": _COMMON | {"host", "port", "database", "user", "password"}}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# Table and column names as customers write them: plain SQL identifiers only.
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class DataConfigInvalid(ValueError):
    """The [data] section breaks a rule; the message names the key."""


@dataclass(frozen=True)
class TablePolicy:
    """One allowlisted table: the columns engineers may use, and those masked on output."""

    name: str
    columns: tuple[str, ...]
    masked: tuple[str, ...] = ()

    def to_toml(self) -> dict[str, Any]:
        table: dict[str, Any] = {"name": self.name, "columns": list(self.columns)}
        if self.masked:
            table["masked"] = list(self.masked)
        return table


@dataclass(frozen=True)
class DataSourcePolicy:
    """One ``[[data.sources]]`` entry. The password is kept out of ``repr``."""

    name: str
    engine: str
    tables: tuple[TablePolicy, ...] = ()
    row_limit: int = DEFAULT_ROW_LIMIT
    path: str = ""
    host: str = ""
    port: int = 0
    database: str = ""
    user: str = ""
    password: str | None = field(default=None, repr=False)

    def table(self, name: str) -> TablePolicy | None:
        return next((t for t in self.tables if t.name == name), None)

    def to_toml(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "engine": self.engine}
        if self.engine == "sqlite":
            data["path"] = self.path
        else:
            data |= {"host": self.host, "port": self.port, "database": self.database,
                     "user": self.user}
            if self.password is not None:
                data["password"] = self.password
        if self.row_limit != DEFAULT_ROW_LIMIT:
            data["row_limit"] = self.row_limit
        data["tables"] = [t.to_toml() for t in self.tables]
        return data


@dataclass(frozen=True)
class DataConfig:
    """The customer's data sources, validated and in normal form."""

    sources: tuple[DataSourcePolicy, ...] = ()

    def source(self, name: str) -> DataSourcePolicy | None:
        return next((s for s in self.sources if s.name == name), None)


def parse(table: Mapping[str, Any]) -> DataConfig:
    """The [data] table, validated; raise DataConfigInvalid on any fault."""
    unknown = set(table) - {"sources"}
    if unknown:
        raise DataConfigInvalid(f"unknown key in [data]: {', '.join(sorted(unknown))}")
    entries = table.get("sources", [])
    if not isinstance(entries, list):
        raise DataConfigInvalid("data.sources must be an array of tables ([[data.sources]])")
    sources = tuple(_source(entry, f"data.sources[{i}]") for i, entry in enumerate(entries))
    _unique([s.name for s in sources], "data.sources")
    return DataConfig(sources)


def to_toml(config: DataConfig) -> dict[str, Any]:
    """The [data] table for ``config``; empty without sources."""
    return {"sources": [s.to_toml() for s in config.sources]} if config.sources else {}


def _source(entry: Any, where: str) -> DataSourcePolicy:
    if not isinstance(entry, dict):
        raise DataConfigInvalid(f"{where} must be a table")
    engine = entry.get("engine")
    if engine not in ENGINES:
        raise DataConfigInvalid(f"{where}.engine must be one of {', '.join(ENGINES)}")
    unknown = set(entry) - _KEYS[engine]
    if unknown:
        raise DataConfigInvalid(f"unknown key in {where}: {', '.join(sorted(unknown))}")
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise DataConfigInvalid(f"{where}.name must be 1 to 64 letters, digits, '_', '.' or '-'")
    common: dict[str, Any] = {"name": name, "engine": engine,
                              "tables": _tables(entry.get("tables", []), where),
                              "row_limit": _row_limit(entry.get("row_limit", DEFAULT_ROW_LIMIT),
                                                      where)}
    if engine == "sqlite":
        return DataSourcePolicy(**common, path=_path(entry.get("path"), where))
    return DataSourcePolicy(**common, **_server(entry, engine, where))


def _server(entry: Mapping[str, Any], engine: str, where: str) -> dict[str, Any]:
    host, database, user = (_text(entry.get(k), f"{where}.{k}")
                            for k in ("host", "database", "user"))
    port = entry.get("port", DEFAULT_PORTS[engine])
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port <= 65535:
        raise DataConfigInvalid(f"{where}.port must be an integer from 1 to 65535")
    password = entry.get("password")
    if password is not None and (not isinstance(password, str) or "\x00" in password):
        raise DataConfigInvalid(f"{where}.password must be a string")
    return {"host": host, "port": port, "database": database, "user": user,
            "password": password}


def _tables(entries: Any, where: str) -> tuple[TablePolicy, ...]:
    if not isinstance(entries, list):
        raise DataConfigInvalid(f"{where}.tables must be an array of tables")
    tables = tuple(_table(entry, f"{where}.tables[{i}]") for i, entry in enumerate(entries))
    _unique([t.name for t in tables], f"{where}.tables")
    return tables


def _table(entry: Any, where: str) -> TablePolicy:
    if not isinstance(entry, dict):
        raise DataConfigInvalid(f"{where} must be a table")
    unknown = set(entry) - {"name", "columns", "masked"}
    if unknown:
        raise DataConfigInvalid(f"unknown key in {where}: {', '.join(sorted(unknown))}")
    name = _ident(entry.get("name"), f"{where}.name")
    columns = tuple(_ident(c, f"{where}.columns") for c in _list(entry, "columns", where))
    masked = tuple(_ident(c, f"{where}.masked") for c in _list(entry, "masked", where))
    if not columns:
        raise DataConfigInvalid(f"{where}.columns must list at least one column")
    _unique(list(columns), f"{where}.columns")
    _unique(list(masked), f"{where}.masked")
    if not set(masked) <= set(columns):
        raise DataConfigInvalid(f"{where}.masked may only name allowlisted columns")
    return TablePolicy(name, columns, masked)


def _list(entry: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = entry.get(key, [])
    if not isinstance(value, list):
        raise DataConfigInvalid(f"{where}.{key} must be a list of names")
    return value


def _ident(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _IDENT.fullmatch(value):
        raise DataConfigInvalid(f"{where}: {value!r} is not a plain SQL identifier "
                                "(letters, digits, '_', at most 63)")
    return value


def _unique(names: list[str], where: str) -> None:
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataConfigInvalid(f"{where}: duplicate name {', '.join(duplicates)}")


def _row_limit(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ROW_LIMIT:
        raise DataConfigInvalid(f"{where}.row_limit must be an integer from 1 to {MAX_ROW_LIMIT}")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 255 \
            or any(c in value for c in "\x00\r\n"):
        raise DataConfigInvalid(f"{where} is required: a string of 1 to 255 characters")
    return value


def _path(value: Any, where: str) -> str:
    if not isinstance(value, str) or "\x00" in value or not os.path.isabs(value) \
            or ".." in value.split("/"):
        raise DataConfigInvalid(f"{where}.path must be an absolute path without '..'")
    return os.path.normpath(value)
