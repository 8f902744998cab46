"""Revocation is immediate: the customer's revoke ends work already running on the agent."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import time
from typing import Any

from demo.deployment import BIN
from tests.integration.e2e.conftest import E2E, Granted

INTERVAL = 5.0  # diag.processes samples CPU this long: the operation is still running


def test_revoke_cancels_a_running_operation_within_a_second(deployment: E2E,
                                                            granted_session: Any) -> None:
    session: Granted = granted_session()
    d = deployment.d
    mark = deployment.agent_log_mark()
    env = {k: v for k, v in os.environ.items() if k != "RMAINT_HOME"}
    started = time.monotonic()
    running = subprocess.Popen(
        [str(BIN / "rmctl"), "--home", str(d.engineer_home), "diag", "processes",
         "--interval", str(INTERVAL), "--session", session.session_id],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        attempt = _wait_for_running(deployment, running, mark, session.session_id)
        log_mark = deployment.agent_daemon_log.mark()
        revoked = d.json(d.rmagent("revoke", session.grant_id, "--reason", "stop at once",
                                   "--json"))
        while running.poll() is None and time.monotonic() - started < 2 * INTERVAL:
            time.sleep(0.01)
        ended_at = time.time()
        stdout, stderr = running.communicate(timeout=30)
    finally:
        if running.poll() is None:
            running.kill()
            running.communicate()
    assert revoked["cancelled_operations"] == 1
    assert (running.returncode, stdout, stderr.strip()) == \
        (1, "", "error: permission denied")
    # Within about a second of the moment the agent took the revocation.
    revocation = deployment.agent_daemon_log.wait_for(
        log_mark, lambda r: r.get("msg") == "grant revoked")
    assert revocation is not None
    assert (revocation["grant_id"], revocation["cancelled"]) == (session.grant_id, 1)
    revoked_at = dt.datetime.fromisoformat(revocation["ts"]).timestamp()
    assert ended_at - revoked_at < 1.0, ended_at - revoked_at
    # The agent's log: allowed before it ran, then cancelled by the revocation.
    entries = deployment.agent_log(mark)
    results = [e for e in entries if e["kind"] == "result" and e["attempt_id"] == attempt["id"]]
    assert [(r["outcome"], r["detail"]) for r in results] == \
        [("cancelled", "grant revoked while running")]
    # The case's session log records it as denied, and the session as ended by the revoke.
    shown = deployment.session_log(session.session_id)
    assert shown.session.end_reason == "revoked"
    assert [(e.operation, e.outcome) for e in shown.events] == [("diag.processes", "denied")]


def _wait_for_running(deployment: E2E, running: subprocess.Popen[str], mark: int,
                      session_id: str) -> dict[str, Any]:
    """The agent's record of the operation, once it has been allowed and is running."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if running.poll() is not None:
            raise AssertionError(f"rmctl ended before the revoke: {running.communicate()}; "
                                 f"session log: {deployment.session_log(session_id).events}")
        entries = deployment.agent_log(mark)
        attempts = [e for e in entries if e["kind"] == "attempt" and e["session_id"] == session_id]
        if attempts:
            assert [(a["operation"], a["outcome"]) for a in attempts] == \
                [("diag.processes", "allowed")]
            assert not [e for e in entries if e["kind"] == "result"]
            return attempts[0]
        time.sleep(0.02)
    raise AssertionError("the operation never started on the agent")

