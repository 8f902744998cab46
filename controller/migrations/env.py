"""Alembic environment: migrates the connection handed over by controller.store.migrate.

For development, ``alembic`` on the command line works too when the config names a
``sqlalchemy.url``; offline (SQL script) mode is not supported.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from controller.store.engine import create_engine
from controller.store.schema import metadata


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection, target_metadata=metadata, compare_type=True,
        # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _run() -> None:
    if context.is_offline_mode():
        raise RuntimeError("offline migrations are not supported")
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.begin() as connection:
            _migrate(connection)
    finally:
        engine.dispose()


_run()
