"""Support bundles attached to cases, stored by hash.

Revision ID: 0004_bundles
Revises: 0003_audit_log
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_bundles"
down_revision = "0003_audit_log"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "case_bundles",
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.case_id"],
                                name=op.f("fk_case_bundles_case_id_cases")),
        sa.ForeignKeyConstraint(["session_id"], ["sessions.session_id"],
                                name=op.f("fk_case_bundles_session_id_sessions")),
        sa.PrimaryKeyConstraint("case_id", "sha256", name=op.f("pk_case_bundles")),
    )


def downgrade() -> None:
    op.drop_table("case_bundles")
