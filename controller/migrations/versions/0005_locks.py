"""Locks on agents, engineer keys, grants and cases.

Revision ID: 0005_locks
Revises: 0004_bundles
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_locks"
down_revision = "0004_bundles"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "locks",
        sa.Column("lock_id", sa.String(length=32), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.String(length=2000), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=True),
        sa.Column("removed_at", sa.Double(), nullable=True),
        sa.Column("removed_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("lock_id", name=op.f("pk_locks")),
    )
    op.create_index(op.f("ix_locks_target"), "locks", ["target"], unique=False)
    # The version of the lock set agents hold: taken by every change, never reused.
    counters = sa.table("counters", sa.column("name", sa.String), sa.column("value", sa.BigInteger))
    op.bulk_insert(counters, [{"name": "locks", "value": 0}])


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM counters WHERE name = 'locks'"))
    op.drop_index(op.f("ix_locks_target"), table_name="locks")
    op.drop_table("locks")
