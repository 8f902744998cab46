"""The live side of a data source: its engine, and the allowlisted schema as it is now.

Identifiers reach SQL only from :class:`LiveSchema`: the customer's allowlist intersected
with the catalog reflected from the database at the moment of use, and quoted by
SQLAlchemy. Values are always bound parameters (see :mod:`agent.data.values`).

Timeouts: PostgreSQL ``lock_timeout`` 3 s and ``statement_timeout`` 30 s; MariaDB/MySQL
``innodb_lock_wait_timeout`` 3 s and ``max_statement_time`` 30 s; SQLite busy timeout 5 s.
Writes on SQLite begin ``IMMEDIATE`` (the database's write lock is the row lock there).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool import NullPool

from agent.data.errors import DataUnavailable
from agent.data.policy import DataSourcePolicy, TablePolicy

CONNECT_TIMEOUT = 5
SQLITE_BUSY_SECONDS = 5.0
_PG_OPTIONS = "-c lock_timeout=3000 -c statement_timeout=30000"
_MYSQL_INIT = "SET SESSION innodb_lock_wait_timeout=3, SESSION max_statement_time=30"
# A preview or an apply compares two snapshots of the tables to find side effects: both must
# see the database as of one moment (plus the transaction's own changes), or another
# client's commit in between reads as a side effect. SQLite's write lock gives that already.
ISOLATION = "REPEATABLE READ"


def make_engine(source: DataSourcePolicy) -> Engine:
    """An engine for ``source`` with the timeouts above; no pooled connections linger."""
    if source.engine == "sqlite":
        engine = sa.create_engine(URL.create("sqlite+pysqlite", database=source.path),
                                  poolclass=NullPool, hide_parameters=True,
                                  connect_args={"timeout": SQLITE_BUSY_SECONDS})
        _begin_immediate(engine)
        return engine
    if source.engine == "postgresql":
        url = URL.create("postgresql+psycopg", username=source.user, password=source.password,
                         host=source.host, port=source.port, database=source.database)
        return sa.create_engine(url, poolclass=NullPool, hide_parameters=True,
                                isolation_level=ISOLATION, connect_args={
                                    "connect_timeout": CONNECT_TIMEOUT, "options": _PG_OPTIONS})
    url = URL.create("mysql+pymysql", username=source.user, password=source.password,
                     host=source.host, port=source.port, database=source.database,
                     query={"charset": "utf8mb4"})
    # hide_parameters: errors name no values (they may be customer data) in the agent log.
    return sa.create_engine(url, poolclass=NullPool, hide_parameters=True,
                            isolation_level=ISOLATION, connect_args={
                                "connect_timeout": CONNECT_TIMEOUT, "read_timeout": 35,
                                "write_timeout": 35, "init_command": _MYSQL_INIT})


def _begin_immediate(engine: Engine) -> None:
    """SQLite: SQLAlchemy emits BEGIN itself, and takes the write lock at once."""
    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


@dataclass(frozen=True)
class LiveTable:
    """An allowlisted table as it exists now: allowlisted columns that exist, its key."""

    name: str
    table: sa.Table
    primary_key: tuple[str, ...]
    masked: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.table.columns)

    @property
    def writable(self) -> bool:
        """Rows can be addressed: the whole primary key is allowlisted."""
        return bool(self.primary_key) and set(self.primary_key) <= set(self.columns)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "primary_key": list(self.primary_key),
                "writable": self.writable, "columns": [
                    {"name": c.name, "type": str(c.type), "nullable": bool(c.nullable),
                     "masked": c.name in self.masked} for c in self.table.columns]}


@dataclass(frozen=True)
class LiveSchema:
    """The allowlisted tables that exist, with a fingerprint of their shape."""

    source: DataSourcePolicy
    tables: dict[str, LiveTable]
    # The triggers on those tables, as (table, name, definition): what a change sets off
    # beyond its own rows, so a trigger added after a preview makes its apply refuse.
    triggers: tuple[tuple[str, str, str], ...] = ()

    def fingerprint(self) -> str:
        shape: list[Any] = [t.describe()
                            for t in sorted(self.tables.values(), key=lambda t: t.name)]
        if self.triggers:
            shape.append({"triggers": [list(t) for t in self.triggers]})
        text = json.dumps(shape, sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def reflect(connection: sa.Connection, source: DataSourcePolicy) -> LiveSchema:
    """The allowlist intersected with the live catalog, read through ``connection``."""
    try:
        existing = set(sa.inspect(connection).get_table_names())
        metadata = sa.MetaData()
        tables = {p.name: _live(connection, metadata, p) for p in source.tables
                  if p.name in existing}
        triggers = _triggers(connection, sorted(tables))
    except sa.exc.SQLAlchemyError as exc:
        raise DataUnavailable(f"cannot read the catalog of {source.name}") from exc
    return LiveSchema(source, tables, triggers)


_TRIGGERS = {
    # SQLite keeps the table name as the trigger's ON clause spelled it: compared lowered.
    "sqlite": "SELECT lower(tbl_name), name, sql FROM sqlite_master WHERE type = 'trigger'",
    # The definition names the function; its body and whether it is enabled are added.
    "postgresql": "SELECT c.relname, t.tgname, concat_ws(' ', pg_get_triggerdef(t.oid), "
                  "t.tgenabled, md5(pg_get_functiondef(t.tgfoid))) FROM pg_trigger t "
                  "JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal "
                  "AND pg_table_is_visible(c.oid)",
    # The body shows only with the TRIGGER privilege on the table (else NULL): the
    # source's user needs it for a body changed in place to count.
    "mysql": "SELECT EVENT_OBJECT_TABLE, TRIGGER_NAME, CONCAT_WS(' ', ACTION_TIMING, "
             "EVENT_MANIPULATION, ACTION_ORDER, ACTION_STATEMENT) "
             "FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()",
}


def _triggers(connection: sa.Connection,
              tables: list[str]) -> tuple[tuple[str, str, str], ...]:
    """The triggers defined on ``tables``, sorted."""
    sql = _TRIGGERS.get(connection.dialect.name)
    if sql is None or not tables:
        return ()
    wanted = {t.lower() for t in tables} if connection.dialect.name == "sqlite" else set(tables)
    rows = connection.exec_driver_sql(sql).fetchall()
    return tuple(sorted((str(t), str(n), str(d)) for t, n, d in rows if t in wanted))


def _live(connection: sa.Connection, metadata: sa.MetaData, policy: TablePolicy) -> LiveTable:
    full = sa.Table(policy.name, metadata, autoload_with=connection)
    allowed = [c for c in full.columns if c.name in policy.columns]
    # A detached copy restricted to the allowlisted columns: no other column can be named.
    narrow = sa.Table(policy.name, sa.MetaData(), *(sa.Column(c.name, c.type,
                      primary_key=c.primary_key, nullable=c.nullable) for c in allowed),
                      implicit_returning=False)  # rowcount must count inserted rows
    key = tuple(c.name for c in full.primary_key.columns)
    return LiveTable(policy.name, narrow, key, tuple(m for m in policy.masked
                                                     if m in narrow.columns))
