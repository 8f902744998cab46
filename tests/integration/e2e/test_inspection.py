"""Periodic inspection with real controller and agent processes: a finding that persists
over many runs opens exactly one case, opened by inspection, with no assignee.

The agent is started with ``RMAINT_INSPECT_MIN_INTERVAL=1`` so that agent.toml may ask
for a run every second (without it the shortest interval is 30 s).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from demo.deployment import Deployment, wait_until

PROFILE = "enabled = true\ninterval_seconds = 1\nmemory_percent = 0.1\ndisk_percent = 100\n"
RUNS = 5


def inspection_runs(d: Deployment) -> int:
    """Inspection attempts recorded in the agent's own log."""
    with sqlite3.connect(f"file:{d.agent_home / 'agent-log.db'}?mode=ro", uri=True) as db:
        row = db.execute("SELECT COUNT(*) FROM entries WHERE kind = 'attempt' "
                         "AND operation = 'inspect.run'").fetchone()
    return int(row[0])


def inspected_deployment(root: Path, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    """Controller, customer acme, agent web-1 with the profile above, auditor bob."""
    monkeypatch.setenv("RMAINT_INSPECT_MIN_INTERVAL", "1")
    d = Deployment(root)
    d.initialise()
    d.start_controller()
    d.rmctl("customer", "add", "acme", "--name", "Acme Corp",
            "--contract-start", "2026-01-01", "--contract-end", "2030-12-31")
    d.enroll_agent()
    d.enable_inspection(PROFILE)
    d.start_agent()
    d.login("auditor", "bob", d.auditor_home)
    return d


@pytest.fixture
def inspected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    d = inspected_deployment(tmp_path / "inspected", monkeypatch)
    try:
        yield d
    finally:
        d.stop()


def test_a_persisting_finding_opens_exactly_one_case(inspected: Deployment) -> None:
    d = inspected
    # Each run reports before the next one starts: RUNS + 1 attempts mean RUNS delivered.
    wait_until(lambda: inspection_runs(d) > RUNS, f"{RUNS} inspection runs", timeout=60)
    cases = d.json(d.auditor("case", "list", "--customer", "acme", "--json"))
    assert len(cases) == 1, cases
    (case,) = cases
    assert case["status"] == "open" and case["assignee"] == ""
    assert case["title"].startswith("web-1: memory use is ")
    log = d.json(d.rmagent("log", "--json"))
    entries = log["entries"] if isinstance(log, dict) else log
    assert any(e.get("operation") == "inspect.run" for e in entries)


def queued_runs(d: Deployment) -> int:
    """Runs waiting in the agent's outbox for the controller."""
    with sqlite3.connect(f"file:{d.agent_home / 'inspect-outbox.db'}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT COUNT(*) FROM runs").fetchone()[0])


def test_runs_wait_for_an_offline_controller_and_still_open_one_case(
        inspected: Deployment) -> None:
    d = inspected
    wait_until(lambda: inspection_runs(d) > 1, "a delivered run", timeout=60)
    controller = next(p for p in d.processes if "rmctl" in str(p.args))
    d.stop(controller)
    wait_until(lambda: queued_runs(d) >= 3, "three queued runs", timeout=60)
    d.start_controller()
    wait_until(lambda: queued_runs(d) == 0, "the queue to drain", timeout=60)
    archive = d.json(d.auditor("customer", "show", "acme", "--json"))
    assert [c["opened_by"] for c in archive["cases"]] == ["inspection"]
    assert archive["systems"][0]["last_inspection"]["findings"][0]["key"] == "memory.use"
