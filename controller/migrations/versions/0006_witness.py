"""Mutual witnessing: agents' log entries and checkpoints, cosignatures.

Revision ID: 0006_witness
Revises: 0005_locks
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_witness"
down_revision = "0005_locks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "witness_state",
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("log_key", sa.Text(), nullable=False),
        sa.Column("pinned_at", sa.Double(), nullable=False),
        sa.Column("mirrored_size", sa.BigInteger(), nullable=False),
        sa.Column("compact_range", sa.LargeBinary(), nullable=False),
        sa.Column("cosigned_size", sa.BigInteger(), nullable=False),
        sa.Column("cosigned_root", sa.LargeBinary(length=32), nullable=False),
        sa.Column("checkpoint", sa.Text(), nullable=True),
        sa.Column("witnessed_at", sa.Double(), nullable=True),
        sa.Column("last_refusal", sa.Text(), nullable=False),
        sa.Column("refused_at", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.agent_id"],
                                name=op.f("fk_witness_state_agent_id_agents")),
        sa.PrimaryKeyConstraint("agent_id", name=op.f("pk_witness_state")),
    )
    op.create_table(
        "witness_entries",
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("entry_index", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("record", sa.LargeBinary(), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("agent_id", "entry_index", name=op.f("pk_witness_entries")),
    )
    op.create_table(
        "audit_cosignatures",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("witness", sa.String(length=64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("signed_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("size", "witness", name=op.f("pk_audit_cosignatures")),
    )


def downgrade() -> None:
    op.drop_table("audit_cosignatures")
    op.drop_table("witness_entries")
    op.drop_table("witness_state")
