"""The main job through the CLIs with --json, and what the records then show.

Case, access request, the customer's approval, a session with three diagnostics, the
customer's revocation; then the auditor reads the session log (every operation with its
outcome and the agent's signed receipt) and the consent log (requested, approved, revoked,
with actor and reason), and the agent's own log agrees. An auditor may read, not act.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import permissions as p
from tests.integration.e2e.conftest import AGENT_ID, APPROVER, E2E, ENGINEER, one_error_line

REASON = "customer reports slow responses"


def _envelope(data: dict[str, Any]) -> p.Envelope:
    """An envelope as ``--json`` prints it (bytes base64) back as the kernel's value."""
    return p.Envelope(data["payload_type"], base64.b64decode(data["payload"]), tuple(
        p.Signature(s["key_id"], base64.b64decode(s["sig"])) for s in data["signatures"]))


def test_the_main_job_is_recorded_end_to_end(deployment: E2E) -> None:
    d = deployment.d
    case_id = d.json(d.rmctl("case", "open", "--customer", "acme", "--title", "web-1 is slow",
                             "--assign", ENGINEER, "--json"))["case_id"]

    filed = d.json(d.engineer("access", "request", "--case", case_id, "--agent", AGENT_ID,
                              "--scope", "diag.read", "--for", "1h", "--reason", REASON,
                              "--json"))
    assert (filed["status"], filed["scopes"], filed["duration_seconds"]) == \
        ("pending", ["diag.read"], 3600)
    request_id = filed["request_id"]

    seen = d.json(d.rmagent("requests", "--json"))
    asked = {r["request_id"]: r for r in seen["requests"]}[request_id]
    engineer_key_id = p.key_id(deployment.engineer_key().public_key())
    assert (asked["engineer"], asked["engineer_key_id"], asked["reason"]) == \
        (ENGINEER, engineer_key_id, REASON)

    grant = d.json(d.rmagent("approve", request_id, "--yes", "--json"))
    approver_key_id = p.key_id(deployment.approver_key().public_key())
    assert (grant["approver"], grant["approver_key_id"], grant["reported"]) == \
        ("carol", approver_key_id, True)
    assert grant["not_after"] - grant["not_before"] == 3600

    session = d.json(d.engineer("session", "open", "--case", case_id, "--agent", AGENT_ID,
                                "--grant", grant["grant_id"], "--json"))
    session_id = session["session_id"]
    assert session["scopes"] == ["diag.read"]

    ran = [d.engineer("diag", "system", "--session", session_id, "--json"),
           d.engineer("diag", "disks", "--session", session_id, "--json"),
           d.engineer("diag", "processes", "--session", session_id, "--by", "memory",
                      "--limit", "3", "--interval", "0", "--json")]
    system, disks, processes = (json.loads(done.stdout) for done in ran)
    assert system["cpu"]["logical"] >= 1 and system["hostname"]
    assert isinstance(disks["filesystems"], list)
    assert processes["by"] == "memory" and 1 <= len(processes["processes"]) <= 3
    receipt_lines = [done.stderr.strip() for done in ran]
    for seq, line in enumerate(receipt_lines, start=1):
        assert line.startswith("receipt sha256:") and line.endswith(f"session {session_id} seq {seq}")

    revoked = d.json(d.rmagent("revoke", grant["grant_id"], "--reason", "diagnosis done",
                               "--json"))
    assert (revoked["cancelled_operations"], revoked["reported"]) == (0, True)

    # The session log, as the auditor reads it: every operation, outcome, receipt.
    shown = d.json(d.auditor("session", "show", session_id, "--json"))
    assert (shown["session"]["end_reason"], shown["session"]["grant_id"]) == \
        ("revoked", grant["grant_id"])
    events = shown["events"]
    assert [(e["seq"], e["operation"], e["outcome"], e["engineer"]) for e in events] == [
        (1, "diag.system", "ok", ENGINEER), (2, "diag.disks", "ok", ENGINEER),
        (3, "diag.processes", "ok", ENGINEER)]
    assert json.loads(events[2]["params_json"]) == {"by": "memory", "interval": 0.0, "limit": 3}
    agent_key = deployment.agent_public_key()
    receipts = []
    for event in events:
        operation = _envelope(event["operation_envelope"])
        receipt = p.Receipt.from_payload(p.verify(
            _envelope(event["receipt"]), p.RECEIPT, {p.key_id(agent_key): agent_key}))
        assert (receipt.agent_id, receipt.session_id, receipt.seq, receipt.outcome) == \
            (AGENT_ID, session_id, event["seq"], "ok")
        assert receipt.operation_digest == p.digest(operation)
        assert receipt_lines[event["seq"] - 1].split()[1] == p.digest(_envelope(event["receipt"]))
        receipts.append(receipt)

    # The consent log: requested, approved, revoked, with who and why.
    consent = d.json(d.auditor("consent", "log", "--case", case_id, "--json"))
    assert [(c["kind"], c["actor"], c["reason"], c["request_id"]) for c in consent] == [
        ("requested", ENGINEER, REASON, request_id),
        ("approved", approver_key_id, "", request_id),
        ("revoked", approver_key_id, "diagnosis done", request_id)]
    assert [c["grant_id"] for c in consent[1:]] == [grant["grant_id"]] * 2
    assert [c["actor_name"] for c in consent] == ["", APPROVER, APPROVER]  # agent.toml's
    shown = d.auditor("consent", "log", "--case", case_id).stdout
    assert f"{APPROVER} ({approver_key_id[:23]}…)" in shown
    assert consent[1]["envelope"]["statement"]["grant_id"] == grant["grant_id"]
    signed = _envelope(consent[1]["envelope"])
    approver = deployment.approver_key().public_key()
    p.verify(signed, p.GRANT, {approver_key_id: approver})  # the customer's own signature

    # The agent's own log agrees: each operation allowed before it ran, then ok.
    log = d.json(d.rmagent("log", "--limit", "1000", "--json"))["entries"]
    mine = {e["id"]: e for e in log if e["session_id"] == session_id}
    results = {e["attempt_id"]: e for e in log if e["kind"] == "result" and e["attempt_id"] in mine}
    for receipt in receipts:
        attempt = mine[receipt.log_index]
        assert (attempt["outcome"], attempt["seq"], attempt["operation_digest"]) == \
            ("allowed", receipt.seq, receipt.operation_digest)
        assert (results[attempt["id"]]["outcome"], results[attempt["id"]]["result_digest"]) == \
            ("ok", receipt.result_digest)

    # The auditor reads the case, but opening one is refused.
    case = d.json(d.auditor("case", "show", case_id, "--json"))
    assert [(r["request_id"], r["status"]) for r in case["requests"]] == [(request_id, "revoked")]
    assert [s["session_id"] for s in case["sessions"]] == [session_id]
    mark = deployment.controller_log.mark()
    refused = d.auditor("case", "open", "--customer", "acme", "--title", "auditor's own",
                        "--assign", ENGINEER, "--json", check=False)
    assert one_error_line(refused) == "permission denied"
    logged = [r for r in deployment.controller_log.since(mark) if r["event"].startswith("rpc.")]
    assert [(r["event"], r["method"], r["reason"]) for r in logged] == [
        ("rpc.refused", "/rmaint.v1.CaseService/OpenCase", "role auditor may not call this method")]
