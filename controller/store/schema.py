"""The controller's tables (SQLAlchemy Core). Migrations in controller/migrations create them.

Times are unix seconds (double precision); grant windows are the integers the signed grant
carries. Envelopes are stored as JSON text (see :mod:`controller.store.codec`) so the
exact signed bytes survive and stay readable with plain SQL.
"""

from __future__ import annotations

import sqlalchemy as sa

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = sa.MetaData(naming_convention=NAMING)

ID = sa.String(128)
NAME = sa.String(64)
TIME: sa.Double[float] = sa.Double()

customers = sa.Table(
    "customers", metadata,
    sa.Column("customer_id", NAME, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("contract_start", sa.Date, nullable=False),
    sa.Column("contract_end", sa.Date, nullable=False),
    sa.Column("created_at", TIME, nullable=False),
)

agents = sa.Table(
    "agents", metadata,
    sa.Column("agent_id", NAME, primary_key=True),
    sa.Column("customer_id", NAME, sa.ForeignKey("customers.customer_id"), nullable=False,
              index=True),
    sa.Column("address", sa.String(300), nullable=False),
    sa.Column("public_key", sa.LargeBinary, nullable=False),
    sa.Column("key_fingerprint", ID, nullable=False),
    sa.Column("enrolled_at", TIME, nullable=False),
    sa.Column("last_seen", TIME, nullable=True),
)

principals = sa.Table(
    "principals", metadata,
    sa.Column("role", sa.String(16), primary_key=True),
    sa.Column("name", NAME, primary_key=True),
    sa.Column("key_fingerprint", ID, nullable=False),
    sa.Column("enrolled_at", TIME, nullable=False),
)

join_tokens = sa.Table(
    "join_tokens", metadata,
    sa.Column("secret_sha256", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("subject", NAME, nullable=False),
    sa.Column("customer_id", NAME, sa.ForeignKey("customers.customer_id"), nullable=True),
    sa.Column("created_at", TIME, nullable=False),
    sa.Column("expires_at", TIME, nullable=False),
    sa.Column("used_at", TIME, nullable=True),
)

counters = sa.Table(
    "counters", metadata,
    sa.Column("name", NAME, primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

cases = sa.Table(
    "cases", metadata,
    sa.Column("case_id", NAME, primary_key=True),
    sa.Column("customer_id", NAME, sa.ForeignKey("customers.customer_id"), nullable=False,
              index=True),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("assignee", NAME, nullable=False),
    sa.Column("opened_by", sa.String(300), nullable=False),
    sa.Column("opened_at", TIME, nullable=False),
    sa.Column("closed_at", TIME, nullable=True),
    sa.Column("resolution", sa.Text, nullable=False),
)

access_requests = sa.Table(
    "access_requests", metadata,
    sa.Column("request_id", ID, primary_key=True),
    sa.Column("case_id", NAME, sa.ForeignKey("cases.case_id"), nullable=False, index=True),
    sa.Column("agent_id", NAME, sa.ForeignKey("agents.agent_id"), nullable=False, index=True),
    sa.Column("engineer", NAME, nullable=False, index=True),
    sa.Column("engineer_key_id", ID, nullable=False),
    sa.Column("scopes", sa.Text, nullable=False),
    sa.Column("duration_seconds", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("created_at", TIME, nullable=False),
    sa.Column("grant_id", ID, nullable=True),
    sa.Column("envelope", sa.Text, nullable=False),
)

grants = sa.Table(
    "grants", metadata,
    sa.Column("grant_id", ID, primary_key=True),
    sa.Column("request_id", ID, sa.ForeignKey("access_requests.request_id"), nullable=False,
              unique=True),
    sa.Column("case_id", NAME, sa.ForeignKey("cases.case_id"), nullable=False, index=True),
    sa.Column("agent_id", NAME, sa.ForeignKey("agents.agent_id"), nullable=False),
    sa.Column("engineer", NAME, nullable=False),
    sa.Column("engineer_key_id", ID, nullable=False),
    sa.Column("scopes", sa.Text, nullable=False),
    sa.Column("not_before", sa.BigInteger, nullable=False),
    sa.Column("not_after", sa.BigInteger, nullable=False, index=True),
    sa.Column("approver_key_id", ID, nullable=False),
    sa.Column("envelope", sa.Text, nullable=False),
    sa.Column("recorded_at", TIME, nullable=False),
    sa.Column("revoked_at", TIME, nullable=True),
    # When the sweep logged the expiry; NULL until then, so it is logged exactly once.
    sa.Column("expired_at", TIME, nullable=True),
)

consent_log = sa.Table(
    "consent_log", metadata,
    sa.Column("entry_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"),
              primary_key=True, autoincrement=True),
    sa.Column("at", TIME, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("request_id", ID, nullable=False),
    sa.Column("grant_id", ID, nullable=True),
    sa.Column("case_id", NAME, nullable=False, index=True),
    sa.Column("agent_id", NAME, nullable=False, index=True),
    sa.Column("actor", ID, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("scopes", sa.Text, nullable=False),
    sa.Column("envelope", sa.Text, nullable=True),
)

sessions = sa.Table(
    "sessions", metadata,
    sa.Column("session_id", NAME, primary_key=True),
    sa.Column("engineer", NAME, nullable=False),
    sa.Column("case_id", NAME, sa.ForeignKey("cases.case_id"), nullable=False, index=True),
    sa.Column("agent_id", NAME, sa.ForeignKey("agents.agent_id"), nullable=False),
    sa.Column("grant_id", ID, sa.ForeignKey("grants.grant_id"), nullable=False, index=True),
    sa.Column("started_at", TIME, nullable=False),
    sa.Column("ended_at", TIME, nullable=True),
    sa.Column("end_reason", sa.String(32), nullable=True),
)

session_events = sa.Table(
    "session_events", metadata,
    sa.Column("event_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"),
              primary_key=True, autoincrement=True),
    sa.Column("session_id", NAME, sa.ForeignKey("sessions.session_id"), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("engineer", NAME, nullable=False),
    sa.Column("operation", ID, nullable=False),
    sa.Column("params_json", sa.Text, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("started_at", TIME, nullable=False),
    sa.Column("duration_ms", sa.Double, nullable=True),
    sa.Column("receipt", sa.Text, nullable=True),
    sa.Column("operation_envelope", sa.Text, nullable=False),
    # By session, and by sequence number within it (a replay is refused at once).
    sa.Index("ix_session_events_session_seq", "session_id", "seq"),
)

approver_keys = sa.Table(
    "approver_keys", metadata,
    sa.Column("agent_id", NAME, sa.ForeignKey("agents.agent_id"), primary_key=True),
    sa.Column("key_id", ID, primary_key=True),
    sa.Column("public_key", sa.LargeBinary, nullable=False),
    sa.Column("reported_at", TIME, nullable=False),
    # The name the agent's customer gave the key (agent.toml); shown, never trusted.
    sa.Column("name", NAME, nullable=False, server_default=""),
)

# What each agent last reported it runs on (sent with its heartbeat).
agent_inventory = sa.Table(
    "agent_inventory", metadata,
    sa.Column("agent_id", NAME, sa.ForeignKey("agents.agent_id"), primary_key=True),
    sa.Column("hostname", sa.String(255), nullable=False),
    sa.Column("os", sa.String(300), nullable=False),
    sa.Column("machine", sa.String(64), nullable=False),
    sa.Column("cpu_count", sa.Integer, nullable=False),
    sa.Column("memory_bytes", sa.BigInteger, nullable=False),
    sa.Column("agent_version", sa.String(64), nullable=False),
    sa.Column("boot_time", TIME, nullable=False),
    sa.Column("reported_at", TIME, nullable=False),
)

# Inspection runs as the agents reported them; findings as JSON (see services.inspection).
inspection_runs = sa.Table(
    "inspection_runs", metadata,
    sa.Column("run_id", ID, primary_key=True),
    sa.Column("agent_id", NAME, sa.ForeignKey("agents.agent_id"), nullable=False, index=True),
    sa.Column("started_at", TIME, nullable=False),
    sa.Column("finished_at", TIME, nullable=False),
    sa.Column("received_at", TIME, nullable=False, index=True),
    sa.Column("completed", sa.Text, nullable=False),
    sa.Column("findings", sa.Text, nullable=False),
)

# The case each inspection finding opened, and what the finding was when last seen.
inspection_cases = sa.Table(
    "inspection_cases", metadata,
    sa.Column("case_id", NAME, sa.ForeignKey("cases.case_id"), primary_key=True),
    sa.Column("agent_id", NAME, sa.ForeignKey("agents.agent_id"), nullable=False),
    sa.Column("finding_key", sa.String(300), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("value", sa.Double, nullable=True),
    sa.Column("threshold", sa.Double, nullable=True),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("first_seen", TIME, nullable=False),
    sa.Column("last_seen", TIME, nullable=False),
    sa.Column("cleared_at", TIME, nullable=True),
    sa.Index("ix_inspection_cases_agent_key", "agent_id", "finding_key"),
)

# Notes added to a case after it was opened (e.g. an inspection finding that cleared).
case_notes = sa.Table(
    "case_notes", metadata,
    sa.Column("note_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"),
              primary_key=True, autoincrement=True),
    sa.Column("case_id", NAME, sa.ForeignKey("cases.case_id"), nullable=False, index=True),
    sa.Column("at", TIME, nullable=False),
    sa.Column("author", sa.String(300), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
)

# The controller's tamper-evident log (see controller.audit): one canonical record per leaf,
# the perfect subtrees the proofs read, the head (size and compact range) every append
# extends, and the checkpoints signed over it. Rows are only ever inserted, except the head.
audit_leaves = sa.Table(
    "audit_leaves", metadata,
    sa.Column("leaf_index", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("record", sa.LargeBinary, nullable=False),
    sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("case_id", NAME, nullable=True, index=True),
    sa.Column("session_id", NAME, nullable=True, index=True),
)

audit_nodes = sa.Table(
    "audit_nodes", metadata,
    sa.Column("level", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("node_index", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("digest", sa.LargeBinary(32), nullable=False),
)

# Each session's latest record, so the next one links to it without a search; derived from
# the leaves (verifiers never read it).
audit_session_heads = sa.Table(
    "audit_session_heads", metadata,
    sa.Column("session_id", NAME, primary_key=True),
    sa.Column("leaf_index", sa.BigInteger, nullable=False),
    sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
)

# The last record of each case's chain (see controller.audit.records.extends).
audit_case_heads = sa.Table(
    "audit_case_heads", metadata,
    sa.Column("case_id", NAME, primary_key=True),
    sa.Column("leaf_index", sa.BigInteger, nullable=False),
    sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
)

audit_head = sa.Table(
    "audit_head", metadata,
    sa.Column("head_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("compact_range", sa.LargeBinary, nullable=False),
)

audit_checkpoints = sa.Table(
    "audit_checkpoints", metadata,
    sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("signed_at", TIME, nullable=False),
)

# Mutual witnessing (see controller.audit.witness). Per agent: its pinned log key, how much
# of its log the controller mirrors (with the compact range of that prefix, so appends need
# no re-read), the last agent checkpoint it cosigned, and the last refusal. The mirrored
# entries are the agent's canonical records; the cosignatures are agents' on the
# controller's own checkpoints (the note with the agent's signature line added).
witness_state = sa.Table(
    "witness_state", metadata,
    sa.Column("agent_id", NAME, sa.ForeignKey("agents.agent_id"), primary_key=True),
    sa.Column("log_key", sa.Text, nullable=False),
    sa.Column("pinned_at", TIME, nullable=False),
    sa.Column("mirrored_size", sa.BigInteger, nullable=False),
    sa.Column("compact_range", sa.LargeBinary, nullable=False),
    sa.Column("cosigned_size", sa.BigInteger, nullable=False),
    sa.Column("cosigned_root", sa.LargeBinary(32), nullable=False),
    sa.Column("checkpoint", sa.Text, nullable=True),
    sa.Column("witnessed_at", TIME, nullable=True),
    sa.Column("last_refusal", sa.Text, nullable=False),
    sa.Column("refused_at", TIME, nullable=True),
)

witness_entries = sa.Table(
    "witness_entries", metadata,
    sa.Column("agent_id", NAME, primary_key=True),
    sa.Column("entry_index", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("record", sa.LargeBinary, nullable=False),
    sa.Column("session_id", NAME, nullable=True),
)

audit_cosignatures = sa.Table(
    "audit_cosignatures", metadata,
    sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("witness", NAME, primary_key=True),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("signed_at", TIME, nullable=False),
)

# Support bundles attached to cases: the bytes are in ``blobs`` under ``sha256`` (no
# foreign key: a blob may be removed under retention while the attachment stays on record).
case_bundles = sa.Table(
    "case_bundles", metadata,
    sa.Column("case_id", NAME, sa.ForeignKey("cases.case_id"), primary_key=True),
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("session_id", NAME, sa.ForeignKey("sessions.session_id"), nullable=False),
    sa.Column("event_id", sa.BigInteger, nullable=False),
    sa.Column("agent_id", NAME, nullable=False),
    sa.Column("created_at", TIME, nullable=False),
)

# Large contents (outputs, bundles, recordings) by SHA-256; records hold the hash only, so
# removing a blob under retention leaves the log intact.
blobs = sa.Table(
    "blobs", metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("stored_at", TIME, nullable=False),
)

# Locks: the service company's own stop on an agent, engineer key, grant or case. Rows are
# never deleted: removing a lock sets removed_at, so the records keep who locked what.
locks = sa.Table(
    "locks", metadata,
    sa.Column("lock_id", sa.String(32), primary_key=True),
    sa.Column("target", sa.String(200), nullable=False, index=True),
    sa.Column("reason", sa.String(2000), nullable=False),
    sa.Column("created_by", NAME, nullable=False),
    sa.Column("created_at", TIME, nullable=False),
    sa.Column("expires_at", TIME, nullable=True),
    sa.Column("removed_at", TIME, nullable=True),
    sa.Column("removed_by", NAME, nullable=True),
)
