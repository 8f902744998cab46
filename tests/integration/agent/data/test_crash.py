"""SIGKILL during apply at eight points: data fully before or fully after, recovery right."""

from __future__ import annotations

import base64
import dataclasses
import json
import subprocess
import sys

import pytest

import permissions as p
from agent.data.undo import resolve_applying
from tests.integration.agent.data.conftest import Harness

PLAN = {"updates": [{"table": "orders", "key": {"id": 10}, "set": {"status": "paid"}},
                    {"table": "customers", "key": {"id": 2}, "set": {"credit": 7}}],
        "inserts": [{"table": "orders", "row": {"id": 14, "customer_id": 2,
                                                "status": "open", "total": "3.00"}}]}
# point -> (data after the kill, journal state after recovery)
POINTS = {"begin": ("before", None), "read": ("before", None), "locked": ("before", None),
          "step-1": ("before", None), "steps-done": ("before", None),
          "verified": ("before", None), "journaled": ("before", "aborted"),
          "committed": ("after", "applied"), "closed": ("after", "applied")}


def _apply_in_child(h: Harness, digest: str, point: str) -> int:
    job = {"source": dataclasses.asdict(h.source), "home": str(h.home), "digest": digest,
           "now": h.clock(), "point": point, "ctx": dataclasses.asdict(h.ctx),
           "approver": base64.b64encode(p.public_key_bytes(h.approver.public_key())).decode()}
    child = subprocess.run([sys.executable, "-m", "tests.integration.agent.data._apply_child"],
                           input=json.dumps(job), text=True, capture_output=True, timeout=60,
                           check=False)
    return child.returncode


@pytest.mark.parametrize("point", sorted(POINTS))
def test_kill_at_each_point_leaves_before_or_after(harness: Harness, point: str) -> None:
    before = harness.content_hash()
    digest = harness.preview(PLAN)["digest"]
    harness.consent(digest)
    returncode = _apply_in_child(harness, digest, point)
    assert returncode == -9
    expected_data, expected_journal = POINTS[point]
    now = harness.content_hash()
    assert (now == before) == (expected_data == "before")
    if expected_data == "after":
        orders = {r["id"]: r for r in harness.rows("orders")}
        assert orders["10"]["status"] == "paid" and "14" in orders
    verdicts = resolve_applying(harness.store, harness.ops.engine, harness.ops.source,
                                harness.clock)
    assert harness.store.journal_state(digest) == expected_journal
    if point in ("journaled", "committed"):
        assert verdicts == {digest: expected_journal}
    assert harness.store.applying() == []
    assert harness.store.consents(digest)[0].used_at is not None  # consumed before any write
