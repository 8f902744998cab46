"""Applying the Alembic migrations in controller/migrations, programmatically.

``rmctl init`` and the server's start call :func:`upgrade`; it is idempotent.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from controller.store.engine import Store

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision the code knows."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "controller/migrations has no revisions"
    return head


def current_revision(store: Store) -> str | None:
    """The revision the database is at; None when it was never migrated."""
    return store.read_sync(lambda c: MigrationContext.configure(c).get_current_revision())


def is_initialised(store: Store) -> bool:
    """Whether the database already holds a controller schema (any revision)."""
    return current_revision(store) is not None


def upgrade(store: Store, revision: str = "head") -> None:
    """Bring the schema to ``revision`` in one transaction."""
    store.write_sync(lambda c: command.upgrade(_config(c), revision))


def downgrade(store: Store, revision: str = "base") -> None:
    """Take the schema back to ``revision`` (tests and operators' rollbacks)."""
    store.write_sync(lambda c: command.downgrade(_config(c), revision))
