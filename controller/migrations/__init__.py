"""Alembic migrations of the controller's store; applied by controller.store.migrate."""
