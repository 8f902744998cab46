"""Session events indexed by session and sequence number.

A relayed operation is refused when its session already holds an event with its sequence
number (a replay); this index answers that at once. It also serves every lookup by
session, so it replaces the index on the session alone.

Revision ID: 0007_event_seq_index
Revises: 0006_witness
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0007_event_seq_index"
down_revision = "0006_witness"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_session_events_session_seq", "session_events", ["session_id", "seq"],
                    unique=False)
    op.drop_index(op.f("ix_session_events_session_id"), table_name="session_events")


def downgrade() -> None:
    op.create_index(op.f("ix_session_events_session_id"), "session_events", ["session_id"],
                    unique=False)
    op.drop_index("ix_session_events_session_seq", table_name="session_events")
