"""Data correction on the customer's allowlisted data sources, with consent to the exact change.

    policy    the [data] section of agent.toml (sources, tables, columns, masks, limits)
    schema    engines with their timeouts; the allowlist intersected with the live catalog
    plan      the declarative plan of updates and inserts (deletes only in undo plans)
    rows      single-row statements and table snapshots (SQLAlchemy Core, bound values)
    change    preview (always rolled back) and apply (verified, journaled, single commit)
    undo      inverse plans, the three-way view of drift, recovery of interrupted applies
    query     data.describe and data.query
    ops       the operations as the catalogue runs them, with the change-consent check

Errors are in :mod:`agent.data.errors`.
"""
