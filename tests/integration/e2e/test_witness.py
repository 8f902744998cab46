"""Mutual witnessing between a real ``rmagent run`` (dial-out: it calls the controller like
every agent does) and a real ``rmctl serve``: the agent's log is mirrored and cosigned,
``rmagent verify-log`` shows the controller's cosignature, a case's bundle carries the
agent's cosignature that ``verify-bundle`` checks against the agent key the customer gave,
and ``rmctl audit reconcile`` finds an event removed from the controller's store."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

import tlog
from tests.integration.e2e.conftest import AGENT_ID, E2E, Granted


def _reconciled(deployment: E2E, *, until: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Reconcile until ``until`` holds: the agent witnesses on its sync loop (2 s)."""
    deadline = time.monotonic() + 30
    while True:
        done = deployment.d.auditor("audit", "reconcile", "--agent", AGENT_ID, "--json",
                                    check=False)
        assert done.returncode in (0, 1, 2), done.stderr
        found: dict[str, Any] = json.loads(done.stdout)
        found["exit"] = done.returncode
        if until(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.3)  # a real agent's sync loop, not a clock under test


def test_a_real_agent_witnesses_and_reconcile_finds_a_deleted_event(
        deployment_factory: Callable[..., E2E], tmp_path: Path) -> None:
    deployment = deployment_factory("both")  # dials out, and serves for the test harness
    granted: Granted = deployment.grant_session()
    d = deployment.d
    for what in ("system", "disks"):
        d.engineer("diag", what, "--session", granted.session_id, "--json")
    d.engineer("session", "close", granted.session_id)
    found = _reconciled(deployment, until=lambda f: f["status"] == "consistent"
                        and f["agent_operations"] == 2)
    assert (found["exit"], found["status"], found["controller_operations"]) == (
        0, "consistent", 2), found
    assert found["agent_log_key"].startswith(f"{AGENT_ID}.agent.")

    log = d.json(d.rmagent("verify-log", "--json"))
    assert log["witness"]["cosigned"] is not None and log["witness"]["witnessed"] >= 1
    assert log["log_key"] == found["agent_log_key"]

    # The customer hands the agent's log key to the auditor, who checks the bundle offline.
    agent_key = tmp_path / "web-1.vkey"
    agent_key.write_text(log["log_key"] + "\n")
    bundle = tmp_path / "case.json"
    d.auditor("audit", "export", "--case", granted.case_id, "-o", str(bundle))
    checked = d.auditor("audit", "verify-bundle", str(bundle), "--agent-key", str(agent_key),
                        "--json", check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert json.loads(checked.stdout)["cosigned_by"] == [log["log_key"]]
    stranger = tmp_path / "other.vkey"  # the agent's name, another key
    other = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    stranger.write_text(tlog.NoteVerifier(log["origin"], other).vkey())
    unpinned = d.auditor("audit", "verify-bundle", str(bundle), "--agent-key", str(stranger),
                         check=False)
    assert unpinned.returncode == 2 and "no valid cosignature" in unpinned.stdout

    # An event removed from the controller's store is missing there, and only there.
    database = sqlite3.connect(d.controller_home / "controller.db")
    try:
        database.execute("DELETE FROM session_events WHERE session_id = ? AND seq = 2",
                         (granted.session_id,))
        database.commit()
    finally:
        database.close()
    done = d.auditor("audit", "reconcile", "--agent", AGENT_ID, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "missing-on-controller" in done.stdout and granted.session_id in done.stdout
