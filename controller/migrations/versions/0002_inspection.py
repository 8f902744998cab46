"""Inspection runs, the cases their findings opened, case notes, agent inventory.

Revision ID: 0002_inspection
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_inspection"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_inventory",
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("os", sa.String(length=300), nullable=False),
        sa.Column("machine", sa.String(length=64), nullable=False),
        sa.Column("cpu_count", sa.Integer(), nullable=False),
        sa.Column("memory_bytes", sa.BigInteger(), nullable=False),
        sa.Column("agent_version", sa.String(length=64), nullable=False),
        sa.Column("boot_time", sa.Double(), nullable=False),
        sa.Column("reported_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.agent_id"],
                                name=op.f("fk_agent_inventory_agent_id_agents")),
        sa.PrimaryKeyConstraint("agent_id", name=op.f("pk_agent_inventory")),
    )
    op.create_table(
        "inspection_runs",
        sa.Column("run_id", sa.String(length=128), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=False),
        sa.Column("finished_at", sa.Double(), nullable=False),
        sa.Column("received_at", sa.Double(), nullable=False),
        sa.Column("completed", sa.Text(), nullable=False),
        sa.Column("findings", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.agent_id"],
                                name=op.f("fk_inspection_runs_agent_id_agents")),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_inspection_runs")),
    )
    op.create_index(op.f("ix_inspection_runs_agent_id"), "inspection_runs", ["agent_id"],
                    unique=False)
    op.create_index(op.f("ix_inspection_runs_received_at"), "inspection_runs",
                    ["received_at"], unique=False)
    op.create_table(
        "inspection_cases",
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("finding_key", sa.String(length=300), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("threshold", sa.Double(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("first_seen", sa.Double(), nullable=False),
        sa.Column("last_seen", sa.Double(), nullable=False),
        sa.Column("cleared_at", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.agent_id"],
                                name=op.f("fk_inspection_cases_agent_id_agents")),
        sa.ForeignKeyConstraint(["case_id"], ["cases.case_id"],
                                name=op.f("fk_inspection_cases_case_id_cases")),
        sa.PrimaryKeyConstraint("case_id", name=op.f("pk_inspection_cases")),
    )
    op.create_index("ix_inspection_cases_agent_key", "inspection_cases",
                    ["agent_id", "finding_key"], unique=False)
    op.create_table(
        "case_notes",
        sa.Column("note_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("author", sa.String(length=300), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.case_id"],
                                name=op.f("fk_case_notes_case_id_cases")),
        sa.PrimaryKeyConstraint("note_id", name=op.f("pk_case_notes")),
    )
    op.create_index(op.f("ix_case_notes_case_id"), "case_notes", ["case_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_case_notes_case_id"), table_name="case_notes")
    op.drop_table("case_notes")
    op.drop_index("ix_inspection_cases_agent_key", table_name="inspection_cases")
    op.drop_table("inspection_cases")
    op.drop_index(op.f("ix_inspection_runs_received_at"), table_name="inspection_runs")
    op.drop_index(op.f("ix_inspection_runs_agent_id"), table_name="inspection_runs")
    op.drop_table("inspection_runs")
    op.drop_table("agent_inventory")
