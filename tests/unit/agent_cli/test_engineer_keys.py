"""Engineer keys pinned on first approval: flagged requests, --accept-new-key, engineers."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

import permissions as p
from agent.cli import _decide
from agent.cli._render import local_day

from .conftest import FakeAgent, Invoke, signed_request


def _one_line_error(result, text: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert text in result.stderr


def _changed(daemon: FakeAgent) -> tuple[str, str]:
    """alice's key pinned by an earlier approval; R-2 from "alice" signed by another key."""
    earlier = signed_request("R-1")
    daemon.pin(earlier)
    daemon.add_request(signed_request("R-2"))
    return (p.verify_access_request(earlier).engineer_key_id,
            p.verify_access_request(daemon.requests["R-2"][0]).engineer_key_id)


def test_a_first_approval_pins_the_key(rmagent: Invoke, daemon: FakeAgent) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    daemon.add_request(signed_request("R-1", key=key))
    (listed,) = json.loads(rmagent("requests", "--json").stdout)["requests"]
    assert listed["key_changed"] is False and listed["pinned_keys"] == []
    rmagent("approver", "init")
    approved = rmagent("approve", "R-1", "--yes")
    assert approved.exit_code == 0, approved.output
    key_id = p.verify_access_request(daemon.requests["R-1"][0]).engineer_key_id
    assert f"key {key_id} pinned for alice" in approved.stdout
    assert daemon.accept_new_key_sent == [False]
    (pin,) = json.loads(rmagent("engineers", "--json").stdout)["engineers"]
    assert (pin["engineer"], pin["key_id"], pin["request_id"]) == ("alice", key_id, "R-1")
    # A later request signed by the same key is not flagged, and approves as before.
    daemon.add_request(signed_request("R-2", key=key))
    (again,) = json.loads(rmagent("requests", "--json").stdout)["requests"]
    assert again["key_changed"] is False and again["pinned_keys"][0]["key_id"] == key_id
    shown = json.loads(rmagent("approve", "R-2", "--yes", "--json").stdout)
    assert shown["key_changed"] is False and shown["key_pinned"] is False
    assert len(daemon.pins) == 1


def test_requests_flag_a_changed_key(rmagent: Invoke, daemon: FakeAgent) -> None:
    old, new = _changed(daemon)
    (listed,) = json.loads(rmagent("requests", "--json").stdout)["requests"]
    assert listed["request_id"] == "R-2" and listed["status"] == "pending"
    assert listed["key_changed"] is True
    assert [k["key_id"] for k in listed["pinned_keys"]] == [old]
    assert listed["pinned_keys"][0]["approver"] == "ops"
    table = rmagent("requests")
    assert table.exit_code == 0, table.output
    assert "pending, KEY CHANGED" in table.stdout
    day = local_day(1_800_000_000)  # when FakeAgent.pin says it was pinned
    assert (f"KEY CHANGED: alice's key was {old} (approved {day} by ops), this request "
            f"(R-2) is signed by {new}") in table.stdout
    assert f"'rmagent --home {daemon.home} approve R-2 --accept-new-key'" in table.stdout


def test_approve_refuses_a_changed_key_without_accept_new_key(
        rmagent: Invoke, daemon: FakeAgent) -> None:
    old, new = _changed(daemon)
    rmagent("approver", "init")
    refused = rmagent("approve", "R-2", "--yes")
    _one_line_error(refused, f"not approved: KEY CHANGED: alice's key was {old}")
    assert new in refused.stderr and "--accept-new-key" in refused.stderr
    assert daemon.grants == {} and daemon.accept_new_key_sent == []
    accepted = rmagent("approve", "R-2", "--yes", "--accept-new-key", "--json")
    assert accepted.exit_code == 0, accepted.output
    shown = json.loads(accepted.stdout)
    assert shown["key_changed"] is True and shown["key_pinned"] is True
    assert "KEY CHANGED" in accepted.stderr  # shown even with --yes --json
    assert daemon.accept_new_key_sent == [True]
    assert [k.key_id for k in daemon.pins] == [old, new]


def test_accept_new_key_is_sent_only_for_a_change_the_customer_saw(
        rmagent: Invoke, daemon: FakeAgent) -> None:
    daemon.add_request(signed_request())
    rmagent("approver", "init")
    assert rmagent("approve", "R-1", "--yes", "--accept-new-key").exit_code == 0
    assert daemon.accept_new_key_sent == [False]


def test_the_preview_says_how_the_key_stands(
        rmagent: Invoke, daemon: FakeAgent, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_decide, "interactive", lambda: True)
    rmagent("approver", "init")
    daemon.add_request(signed_request("R-1"))
    first = rmagent("approve", "R-1", input="n\n")
    assert "first request from alice: approving pins this key" in first.stdout
    old, _new = _changed(daemon)
    flagged = rmagent("approve", "R-2", "--accept-new-key", input="n\n")
    _one_line_error(flagged, "not approved")
    assert f"KEY CHANGED: alice's key was {old}" in flagged.stdout
    assert "KEY CHANGED: not the key pinned for alice; approving pins it too" in flagged.stdout
    assert "Accept the new key and grant this access?" in flagged.stdout
    assert daemon.grants == {}


def test_engineers_lists_and_forgets(rmagent: Invoke, daemon: FakeAgent) -> None:
    assert "no engineer key is pinned" in rmagent("engineers").stdout
    alice = signed_request("R-1")
    daemon.pin(alice)
    daemon.pin(signed_request("R-2", engineer="bob"), approver="boss")
    key_id = p.verify_access_request(alice).engineer_key_id
    table = rmagent("engineers")
    assert table.exit_code == 0, table.output
    assert "alice" in table.stdout and key_id in table.stdout and "boss" in table.stdout
    listed = json.loads(rmagent("engineers", "list", "--json").stdout)["engineers"]
    assert [k["engineer"] for k in listed] == ["alice", "bob"]
    forgot = rmagent("engineers", "forget", "alice")
    assert forgot.exit_code == 0, forgot.output
    assert f"forgot alice's key {key_id}" in forgot.stdout
    assert [k.engineer for k in daemon.pins] == ["bob"]
    _one_line_error(rmagent("engineers", "forget", "alice"), "no key is pinned for engineer alice")
