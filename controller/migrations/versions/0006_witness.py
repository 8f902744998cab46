"""Mutual witnessing: agents' log entries and checkpoints, cosignatures.

Revision ID: 0006_witness
Revises: 0005_locks
Create Date: 2026-11-27
"""

from __future__ import annotations

revision = "0006_witness"
down_revision = "0005_locks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
