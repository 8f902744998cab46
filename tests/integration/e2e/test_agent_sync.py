"""``rmagent sync`` against a real ``rmctl serve``: one round with the controller now, then a
witnessing round whose result it prints; the agent's own record of the controller's
cosignature agrees."""

from __future__ import annotations

from typing import Any

from tests.integration.e2e.conftest import E2E, Granted


def test_rmagent_sync_runs_a_witnessing_round_and_says_what_it_achieved(
        deployment: E2E, granted_session: Any) -> None:
    d = deployment.d
    granted: Granted = granted_session()
    d.engineer("diag", "system", "--session", granted.session_id, "--json")
    done = d.rmagent("sync", "--json")
    report = d.json(done)
    assert report["sync_error"] is None and report["witness_error"] is None, report
    witnessed = report["witness"]
    # The round ran until the controller mirrored the whole log, and cosigned it.
    assert witnessed["size"] >= 2  # at least the operation's attempt and result
    assert witnessed["mirrored"] == witnessed["cosigned"] == witnessed["size"]
    kept = d.json(d.rmagent("verify-log", "--json"))["witness"]
    assert kept["cosigned"]["size"] >= witnessed["cosigned"]

    people = d.rmagent("sync")
    assert "synced with the controller" in people.stdout
    assert "witnessed: the controller mirrors" in people.stdout, people.stdout
