"""The demo's data correction: a wrong row and a missing record in a sample business database,
previewed, consented to by the customer, applied, then undone the same way; at the end the
customer revokes the grant it ran under."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable

from demo.deployment import Deployment, StepFailed

SOURCES = """[[data.sources]]
name = "shop"
engine = "sqlite"
path = "{path}"

[[data.sources.tables]]
name = "customers"
columns = ["id", "name", "email"]
masked = ["email"]

[[data.sources.tables]]
name = "orders"
columns = ["id", "customer_id", "status", "total"]
"""
PLAN = {"updates": [{"table": "orders", "key": {"id": 1002}, "set": {"status": "shipped"},
                     "expect": {"status": "shiped"}}],
        "inserts": [{"table": "orders", "row": {"id": 1003, "customer_id": 2,
                                                "status": "open", "total": "49.90"}}]}


def make_shop(d: Deployment) -> str:
    path = d.root / "shop.db"
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as db:
        db.executescript("""
            CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT);
            CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL
                                 REFERENCES customers(id), status TEXT NOT NULL, total NUMERIC);
            INSERT INTO customers VALUES (1, 'Ada Lovelace', 'ada@example.com'),
                                         (2, 'Charles Babbage', 'charles@example.com');
            INSERT INTO orders VALUES (1001, 1, 'shipped', 120.00), (1002, 1, 'shiped', 75.50);
        """)
    return str(path)


def _digest(output: str) -> str:
    found = re.search(r"digest (sha256:[0-9a-f]{64})", output)
    if found is None:
        raise StepFailed("the preview printed no digest")
    return found.group(1)


def _consent_and_apply(d: Deployment, digest: str) -> None:
    d.rmagent("changes")
    d.rmagent("approve-change", digest[:19], "--yes")
    d.engineer("data", "apply", digest)


def correction(d: Deployment, step: Callable[[str], None]) -> str:
    """Run the correction; the id of its case."""
    step("The customer lists a business database for correction (email masked) in agent.toml")
    d.enable_data(SOURCES.format(path=make_shop(d)))
    case_id = d.open_case("order 1002 has a wrong status; order 1003 was never entered")
    grant_id = d.grant_access(case_id, scopes=("data.read", "data.write"),
                              reason="correct order 1002 and enter order 1003")
    d.engineer("session", "open", "--case", case_id, "--agent", "web-1", "--grant", grant_id)
    step("The engineer looks at the data: structured queries only, masked columns masked")
    d.engineer("data", "describe", "shop")
    d.engineer("data", "query", "shop", "orders", "--where", "customer_id>=1")
    step("The engineer previews the correction: run and rolled back, nothing changes yet")
    plan = d.root / "plan.json"
    plan.write_text(json.dumps(PLAN, indent=2), encoding="utf-8")
    digest = _digest(d.engineer("data", "preview", "shop", "--plan", str(plan)).stdout)
    step("The customer reviews the exact rows, unmasked, consents to that digest; it is applied")
    _consent_and_apply(d, digest)
    d.engineer("data", "query", "shop", "orders")
    step("Undo: the inverse change gets its own preview and consent, then restores the rows")
    undo = _digest(d.engineer("data", "undo", digest).stdout)
    _consent_and_apply(d, undo)
    d.engineer("data", "query", "shop", "orders")
    d.engineer("session", "close")
    step("The correction is done: the customer revokes its grant too")
    d.rmagent("revoke", grant_id, "--reason", "correction done")
    return case_id
