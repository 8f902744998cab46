"""`rmagent log` reads the agent's operation log without writing to it."""

from __future__ import annotations

import json
from pathlib import Path

from agent.log import Attempt, OperationLog, Result

from .conftest import Invoke


def _write_log(path: Path) -> None:
    log = OperationLog(path)
    try:
        first = log.record_attempt(Attempt(
            at=1000.0, outcome="allowed", reason="", detail="", operation_digest="sha256:aa",
            envelope=b"{}", session_id="S-1", seq=1, grant_id="G-1", case_id="C-0001",
            engineer="alice", operation="diag.processes", params_json='{"limit":5}'))
        log.record_result(Result(attempt_id=first, at=1000.2, outcome="ok",
                                 result_digest="sha256:bb", duration_ms=12.5))
        log.record_attempt(Attempt(
            at=1001.0, outcome="denied", reason="grant-expired", detail="after 2h",
            operation_digest="sha256:cc", envelope=b"{}", session_id="S-1", seq=2,
            grant_id="G-1", case_id="C-0001", engineer="alice", operation="diag.system",
            params_json="{}"))
    finally:
        log.close()


def test_log_lists_attempts_and_results(rmagent: Invoke, home: Path) -> None:
    _write_log(home / "agent-log.db")
    before = (home / "agent-log.db").read_bytes()
    entries = json.loads(rmagent("log", "--json").stdout)["entries"]
    assert [(e["kind"], e["outcome"]) for e in entries] == [
        ("attempt", "allowed"), ("result", "ok"), ("attempt", "denied")]
    assert entries[0]["params"] == {"limit": 5} and entries[2]["reason"] == "grant-expired"
    last = json.loads(rmagent("log", "--limit", "1", "--json").stdout)["entries"]
    assert [e["id"] for e in last] == [3]
    shown = rmagent("log").stdout
    assert "diag.processes" in shown and "grant-expired: after 2h" in shown
    assert (home / "agent-log.db").read_bytes() == before


def test_no_log_yet(rmagent: Invoke, home: Path) -> None:
    result = rmagent("log")
    assert result.exit_code == 0
    assert "no operation has been attempted" in result.stdout
    assert not (home / "agent-log.db").exists()


def test_limit_must_be_positive(rmagent: Invoke) -> None:
    assert rmagent("log", "--limit", "0").exit_code == 2
