"""Approver keys carry the name the agent's customer gave them.

The consent log shows that name beside an approver's key id. Rows reported before this
revision have none until the agent's next heartbeat.

Revision ID: 0009_approver_names
Revises: 0008_case_chains
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_approver_names"
down_revision = "0008_case_chains"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("approver_keys", sa.Column("name", sa.String(length=64), nullable=False,
                                             server_default=""))


def downgrade() -> None:  # SQLite drops a column only by copying the table: batch mode
    with op.batch_alter_table("approver_keys") as batch:
        batch.drop_column("name")
