"""The tamper-evident log: leaves, stored tree nodes, head, signed checkpoints; blobs.

Revision ID: 0003_audit_log
Revises: 0002_inspection
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_audit_log"
down_revision = "0002_inspection"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_leaves",
        sa.Column("leaf_index", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("record", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("case_id", sa.String(length=64), nullable=True),
        sa.Column("session_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("leaf_index", name=op.f("pk_audit_leaves")),
    )
    op.create_index(op.f("ix_audit_leaves_case_id"), "audit_leaves", ["case_id"], unique=False)
    op.create_index(op.f("ix_audit_leaves_session_id"), "audit_leaves", ["session_id"],
                    unique=False)
    op.create_table(
        "audit_nodes",
        sa.Column("level", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("node_index", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("digest", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("level", "node_index", name=op.f("pk_audit_nodes")),
    )
    op.create_table(
        "audit_session_heads",
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("leaf_index", sa.BigInteger(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_audit_session_heads")),
    )
    head = op.create_table(
        "audit_head",
        sa.Column("head_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("compact_range", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("head_id", name=op.f("pk_audit_head")),
    )
    # The one head row every append locks and extends: the empty log.
    op.bulk_insert(head, [{"head_id": 1, "size": 0, "compact_range": b""}])
    op.create_table(
        "audit_checkpoints",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("signed_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("size", name=op.f("pk_audit_checkpoints")),
    )
    op.create_table(
        "blobs",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("stored_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_blobs")),
    )


def downgrade() -> None:
    op.drop_table("blobs")
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_head")
    op.drop_table("audit_session_heads")
    op.drop_table("audit_nodes")
    op.drop_index(op.f("ix_audit_leaves_session_id"), table_name="audit_leaves")
    op.drop_index(op.f("ix_audit_leaves_case_id"), table_name="audit_leaves")
    op.drop_table("audit_leaves")
