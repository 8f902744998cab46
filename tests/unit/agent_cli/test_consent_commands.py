"""requests / approve / deny / revoke / grants / status against a fake daemon."""

from __future__ import annotations

import json

import pytest

import permissions as p
from agent.cli import _decide
from rmaint.v1 import agent_pb2

from .conftest import FakeAgent, Invoke, signed_request


def _one_line_error(result, text: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert text in result.stderr


def test_requests_lists_what_the_engineer_asked(rmagent: Invoke, daemon: FakeAgent) -> None:
    envelope = signed_request(scopes=("diag.read", "diag.logs"))
    daemon.add_request(envelope)
    result = rmagent("requests", "--json")
    assert result.exit_code == 0, result.output
    (listed,) = json.loads(result.stdout)["requests"]
    engineer_key_id = p.verify_access_request(envelope).engineer_key_id
    assert listed["request_id"] == "R-1" and listed["engineer_key_id"] == engineer_key_id
    assert listed["scopes"] == ["diag.logs", "diag.read"] and listed["status"] == "pending"
    table = rmagent("requests")
    assert "R-1" in table.stdout and "alice" in table.stdout and "2h" in table.stdout
    assert engineer_key_id[:19] in table.stdout


def test_sync_error_is_a_warning(rmagent: Invoke, daemon: FakeAgent) -> None:
    daemon.sync_error = "controller unreachable"
    result = rmagent("requests")
    assert result.exit_code == 0
    assert "warning: could not fetch new requests" in result.stderr
    assert "no pending requests" in result.stdout


def test_approve_narrowed_grant_is_signed_by_the_pinned_key(
        rmagent: Invoke, daemon: FakeAgent) -> None:
    daemon.add_request(signed_request(scopes=("diag.read", "diag.logs")))
    made = json.loads(rmagent("approver", "init", "--json").stdout)
    result = rmagent("approve", "R-1", "--scope", "diag.read", "--for", "30m", "--yes", "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    (envelope,) = daemon.grants.values()
    grant = p.Grant.from_payload(envelope.payload)
    assert grant.scopes == ("diag.read",) and grant.not_after - grant.not_before == 1800
    assert grant.approver_key_id == made["key_id"] == shown["approver_key_id"]
    assert shown["grant_id"] == grant.grant_id and shown["reported"] is True


def test_approve_needs_confirmation_or_yes(rmagent: Invoke, daemon: FakeAgent) -> None:
    daemon.add_request(signed_request())
    rmagent("approver", "init")
    _one_line_error(rmagent("approve", "R-1", input="y\n"), "pass --yes")
    assert daemon.grants == {}


def test_approve_refuses_widening(rmagent: Invoke, daemon: FakeAgent) -> None:
    daemon.add_request(signed_request(scopes=("diag.read",), duration=3600))
    rmagent("approver", "init")
    _one_line_error(rmagent("approve", "R-1", "--scope", "shell", "--yes"),
                    "did not ask for: shell")
    _one_line_error(rmagent("approve", "R-1", "--for", "2h", "--yes"),
                    "cannot grant 2h: the request asked for 1h")
    bad = rmagent("approve", "R-1", "--for", "soon", "--yes")  # a usage error: exit 2
    assert bad.exit_code == 2 and bad.stderr.count("\n") == 1
    assert "invalid value for '--for': invalid duration 'soon'" in bad.stderr
    assert daemon.grants == {}


def test_several_approvers_need_a_choice(rmagent: Invoke, daemon: FakeAgent) -> None:
    daemon.add_request(signed_request())
    rmagent("approver", "init", "--name", "ops")
    rmagent("approver", "init", "--name", "boss")
    _one_line_error(rmagent("approve", "R-1", "--yes"),
                    "several approvers are pinned (ops, boss): choose one with --approver")
    assert rmagent("approve", "R-1", "--yes", "--approver", "boss").exit_code == 0


def test_decided_or_unknown_requests(rmagent: Invoke, daemon: FakeAgent) -> None:
    daemon.add_request(signed_request())
    rmagent("approver", "init")
    assert rmagent("approve", "R-1", "--yes").exit_code == 0
    _one_line_error(rmagent("approve", "R-1", "--yes"), "request R-1 is approved")
    _one_line_error(rmagent("deny", "R-9", "--reason", "no"), "the agent has no request R-9")


def test_deny_signs_the_reason(rmagent: Invoke, daemon: FakeAgent) -> None:
    daemon.add_request(signed_request())
    rmagent("approver", "init")
    result = rmagent("deny", "R-1", "--reason", "not during closing")
    assert result.exit_code == 0, result.output
    assert "not reported to the controller yet" in result.stdout
    (denial,) = daemon.denials
    assert p.Denial.from_payload(denial.payload).reason == "not during closing"


def test_revoke_prints_cancelled_operations(rmagent: Invoke, daemon: FakeAgent) -> None:
    daemon.add_request(signed_request())
    rmagent("approver", "init")
    grant_id = json.loads(rmagent("approve", "R-1", "--yes", "--json").stdout)["grant_id"]
    assert grant_id in rmagent("grants").stdout
    daemon.shells = [agent_pb2.LiveShell(shell_id="sh-1", grant_id=grant_id),
                     agent_pb2.LiveShell(shell_id="sh-2", grant_id="G-other")]
    result = rmagent("revoke", grant_id, "--reason", "done")
    assert result.exit_code == 0, result.output
    assert "2 in-flight operation(s) cancelled, ended 1 shell;" in result.stdout
    revocation = p.Revocation.from_payload(daemon.revoked[grant_id].payload)
    assert revocation.reason == "done"
    _one_line_error(rmagent("revoke", grant_id), "already revoked")
    assert "no active grants" in rmagent("grants").stdout
    (listed,) = json.loads(rmagent("grants", "--all", "--json").stdout)["grants"]
    assert listed["status"] == "revoked"


def test_status(rmagent: Invoke, daemon: FakeAgent) -> None:
    rmagent("approver", "init", "--name", "ops")
    result = rmagent("status")
    assert result.exit_code == 0, result.output
    assert "web-1" in result.stdout and "ops (sha256:" in result.stdout
    assert json.loads(rmagent("status", "--json").stdout)["unreported"] == 1


def test_interactive_approval_shows_the_engineer_key(
        rmagent: Invoke, daemon: FakeAgent, monkeypatch: pytest.MonkeyPatch) -> None:
    envelope = signed_request(scopes=("diag.read", "diag.logs"))
    daemon.add_request(envelope)
    rmagent("approver", "init")
    monkeypatch.setattr(_decide, "interactive", lambda: True)
    declined = rmagent("approve", "R-1", "--scope", "diag.read", input="n\n")
    _one_line_error(declined, "not approved")
    assert p.verify_access_request(envelope).engineer_key_id in declined.stdout
    assert "diag.read  (asked: diag.logs, diag.read)" in declined.stdout
    assert daemon.grants == {}
    accepted = rmagent("approve", "R-1", input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert len(daemon.grants) == 1


def test_sessions_without_shells_says_so(rmagent: Invoke, daemon: FakeAgent) -> None:
    result = rmagent("sessions")
    assert (result.exit_code, result.stdout) == (0, "no live shells\n")
