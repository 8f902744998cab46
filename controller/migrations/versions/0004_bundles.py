"""Support bundles attached to cases, stored by hash.

Revision ID: 0004_bundles
Revises: 0003_audit_log
Create Date: 2026-11-27
"""

from __future__ import annotations

revision = "0004_bundles"
down_revision = "0003_audit_log"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
