"""Each case's records form a chain: the last record of each case's chain.

A case's consent and lock records, and its sessions' "opened" records, now link to the
case's previous such record (controller.audit.records.extends), so a case's evidence with
one of them removed no longer verifies. This table is where the next one finds its link.
It starts at each case's last such record already in the log, so a case opened before
this revision goes on from where it was; its older records stay unlinked. Going back to
0007 and writing records with a controller that has no case chains is not supported: those
records would read as unlinked after linked ones.

Revision ID: 0008_case_chains
Revises: 0007_event_seq_index
Create Date: 2026-11-27
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0008_case_chains"
down_revision = "0007_event_seq_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    heads = op.create_table(
        "audit_case_heads",
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("leaf_index", sa.BigInteger(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("case_id", name=op.f("pk_audit_case_heads")),
    )
    leaves = sa.table("audit_leaves", sa.column("leaf_index", sa.BigInteger),
                      sa.column("record", sa.LargeBinary),
                      sa.column("leaf_hash", sa.LargeBinary),
                      sa.column("case_id", sa.String))
    last: dict[str, tuple[int, bytes]] = {}
    rows = op.get_bind().execute(
        sa.select(leaves.c.leaf_index, leaves.c.record, leaves.c.leaf_hash, leaves.c.case_id)
        .where(leaves.c.case_id.is_not(None)).order_by(leaves.c.leaf_index))
    for index, record, leaf_hash, case_id in rows:
        fields = json.loads(bytes(record))
        if fields["session"] is None or fields["kind"] == "session.opened":
            last[case_id] = (int(index), bytes(leaf_hash))
    if last:
        op.bulk_insert(heads, [{"case_id": c, "leaf_index": i, "leaf_hash": h}
                               for c, (i, h) in sorted(last.items())])


def downgrade() -> None:
    op.drop_table("audit_case_heads")
