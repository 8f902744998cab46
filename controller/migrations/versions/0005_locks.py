"""Locks on agents, engineer keys, grants and cases.

Revision ID: 0005_locks
Revises: 0004_bundles
Create Date: 2026-11-27
"""

from __future__ import annotations

revision = "0005_locks"
down_revision = "0004_bundles"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
