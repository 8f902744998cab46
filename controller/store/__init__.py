"""The controller's store: SQLAlchemy Core tables, Alembic migrations, one module per use.

    engine      Store (transactions in worker threads), create_engine (SQLite/PostgreSQL)
    migrate     upgrade / downgrade / current_revision, applied programmatically
    schema      the tables;  records: frozen row values;  codec: envelopes and scopes
    directory   customers, agents, people, approver keys
    tokens      join tokens (hashes only)
    cases       cases and their numbering
    requests    access requests and the consent log
    grants      grants, revocation and expiry marks
    sessions    sessions and session events
    auditlog    the tamper-evident log: leaves, stored tree nodes, head, checkpoints
    events      the log record of each consent and session row (appended with the row)
    blobs       large contents by SHA-256

Repository functions take a Connection and run inside the caller's transaction
(``await store.write(fn, ...)``), so a use case commits or rolls back as a whole.
"""

from controller.store.engine import Store, create_engine

__all__ = ["Store", "create_engine"]
