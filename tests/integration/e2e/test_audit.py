"""The auditor's tools against a real deployment: verify a case's log, export its evidence,
check it offline, prove one event, keep a checkpoint and prove the log only grew; an edited
bundle is refused with the record pinpointed."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from pathlib import Path
from typing import Any

from controller.audit.keys import create_log_key
from tests.integration.e2e.conftest import E2E, Granted


def _verified_case(deployment: E2E, case_id: str) -> dict[str, Any]:
    """Verify until a checkpoint covers the session, closed (signed within a second)."""
    d = deployment.d
    deadline = time.monotonic() + 20
    while True:
        done = d.auditor("audit", "verify", "--case", case_id, "--json", check=False)
        assert done.returncode == 0, done.stderr or done.stdout
        report: dict[str, Any] = json.loads(done.stdout)
        covered = report["sessions"] >= 1 and not report["open_sessions"]
        if covered or time.monotonic() > deadline:
            return report
        time.sleep(0.3)  # a real controller's checkpointer, not a clock under test


def _bundle_check(deployment: E2E, path: Path) -> subprocess.CompletedProcess[str]:
    return deployment.d.auditor("audit", "verify-bundle", str(path), check=False)


def test_a_case_verifies_exports_and_an_edited_bundle_is_refused(
        deployment: E2E, granted_session: Any, tmp_path: Path) -> None:
    d = deployment.d
    granted: Granted = granted_session()
    for what in ("system", "disks"):
        d.engineer("diag", what, "--session", granted.session_id, "--json")
    d.engineer("session", "close", granted.session_id)

    report = _verified_case(deployment, granted.case_id)
    assert report["status"] == "verified" and report["open_sessions"] == []
    # 2 consent records, opened + 2 x (operation, outcome) + closed
    assert report["records"] >= 8 and report["sessions"] == 1
    pinned = (d.auditor_home / "log.vkey").read_text()
    assert pinned == (d.controller_home / "log.vkey").read_text()

    bundle = tmp_path / "case.json"
    d.auditor("audit", "export", "--case", granted.case_id, "-o", str(bundle))
    assert _bundle_check(deployment, bundle).returncode == 0

    edited = json.loads(bundle.read_text())
    victim = edited["records"][3]
    record = json.loads(base64.b64decode(victim["record"]))
    record["actor"] = "mallory"
    victim["record"] = base64.b64encode(json.dumps(
        record, sort_keys=True, separators=(",", ":")).encode()).decode()
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(edited))
    refused = _bundle_check(deployment, tampered)
    assert refused.returncode == 1
    assert f"leaf {victim['index']}" in refused.stdout


def test_one_event_is_proven_and_the_log_only_grew(deployment: E2E, granted_session: Any,
                                                     tmp_path: Path) -> None:
    d = deployment.d
    kept = tmp_path / "kept.checkpoint"
    d.auditor("audit", "checkpoint", "--save", str(kept))
    granted: Granted = granted_session()
    d.engineer("diag", "system", "--session", granted.session_id, "--json")
    d.engineer("session", "close", granted.session_id)
    report = _verified_case(deployment, granted.case_id)
    assert report["status"] == "verified"
    shown = d.auditor("audit", "verify", "--case", granted.case_id)
    said = shown.stdout + shown.stderr  # the newest records: the chain cannot vouch for them
    assert "complete from the case's first record to leaf " in said
    assert "a later record of the case would show only in 'audit verify --full'" in said

    grown = d.auditor("audit", "verify", "--session", granted.session_id, "--since", str(kept),
                      "--json", check=False)
    assert grown.returncode == 0, grown.stdout + grown.stderr
    assert json.loads(grown.stdout)["consistency_proofs"] >= 1

    bundle = tmp_path / "case.json"
    d.auditor("audit", "export", "--case", granted.case_id, "-o", str(bundle))
    written = bundle.read_bytes()
    again = d.auditor("audit", "export", "--case", granted.case_id, "-o", str(bundle),
                      check=False)
    assert (again.returncode, again.stderr) == (
        3, f"error: {bundle} exists: pass --force to replace it\n")
    assert bundle.read_bytes() == written
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "nowhere" / "x.json")
    into_link = d.auditor("audit", "export", "--case", granted.case_id, "-o", str(dangling),
                          check=False)
    assert (into_link.returncode, into_link.stderr) == (
        3, f"error: {dangling} exists: pass --force to replace it\n")
    assert dangling.is_symlink()
    d.auditor("audit", "export", "--case", granted.case_id, "-o", str(bundle), "--force")
    not_kept = d.auditor("audit", "verify", "--full", "--since", str(bundle), check=False)
    assert (not_kept.returncode, not_kept.stderr) == (3, f"error: --since {bundle} is not a "
                                                         "saved checkpoint (see audit "
                                                         "checkpoint --save)\n")
    # The kept checkpoint is updated in place; a file that is not one is not replaced.
    exported = bundle.read_bytes()
    kept_over = d.auditor("audit", "checkpoint", "--save", str(bundle), check=False)
    assert kept_over.returncode == 3 and bundle.read_bytes() == exported
    assert f"{bundle} is not a checkpoint of this log" in kept_over.stderr
    assert "pass --force to replace it" in kept_over.stderr
    d.auditor("audit", "checkpoint", "--save", str(kept))  # the earlier one: updated
    index = json.loads(bundle.read_text())["records"][-1]["index"]
    proof = tmp_path / "event.json"
    proved = d.auditor("audit", "prove", str(index), "-o", str(proof))
    assert f"leaf {index} of the log" in proved.stdout  # not a session's event number
    assert _bundle_check(deployment, proof).returncode == 0

    page = tmp_path / "case.html"
    d.auditor("audit", "report", "--case", granted.case_id, "--html", str(page))
    html = page.read_text()
    assert "session.opened" in html and "<script" not in html and "verified" in html
    again = d.auditor("audit", "report", "--case", granted.case_id, "--html", str(page),
                      check=False)
    assert (again.returncode, again.stderr) == (
        3, f"error: {page} exists: pass --force to replace it\n")
    written = d.json(d.auditor("audit", "report", "--case", granted.case_id, "--html",
                               str(page), "--force", "--json"))
    assert written == {"file": str(page), "status": "verified", "records": written["records"]}


def test_usage_errors_exit_3_in_one_line(deployment: E2E, tmp_path: Path) -> None:
    d = deployment.d
    d.auditor("audit", "checkpoint", "--save", str(tmp_path / "kept"))  # pins the key
    for args, message in (
            (("verify", "--case", "C-8888"), "no logged events for case C-8888"),
            (("verify", "--full", "--key", str(tmp_path / "nope.vkey")), "nope.vkey"),
            (("verify-bundle", str(tmp_path / "kept"), "--agent-key", str(tmp_path / "bad")),
             "bad"),
            (("reconcile", "--agent", "nope"), "nope"),
            (("prove", "99999", "-o", str(tmp_path / "p.json")), "no event 99999")):
        done = d.auditor("audit", *args, check=False)
        assert done.returncode == 3, (args, done.stdout, done.stderr)
        assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
        assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "p.json").exists()
    full = d.auditor("audit", "verify", "--full")
    assert "the full log" in full.stdout and "full True" not in full.stdout
    # Without an agent's key, its cosignatures are not checked, and it says so (not "-").
    assert "not checked (audit verify-bundle --agent-key checks an agent's)" in full.stdout


def test_a_second_login_never_replaces_the_pinned_log_key(deployment: E2E,
                                                          tmp_path: Path) -> None:
    d = deployment.d
    home, pin = tmp_path / "carl", tmp_path / "carl" / "log.vkey"
    d.run("rmctl", home, "login", "--token", d.token("auditor", "add", "carl"))
    assert pin.read_text() == (d.controller_home / "log.vkey").read_text()
    create_log_key(tmp_path / "elsewhere", "other.test")
    foreign = (tmp_path / "elsewhere" / "log.vkey").read_text()
    pin.write_text(foreign)  # what this home pinned before the controller's key changed
    again = d.run("rmctl", home, "login", "--token", d.token("auditor", "add", "carl"))
    assert pin.read_text() == foreign  # kept: the controller's word does not replace it
    assert again.stderr.startswith("warning: the controller's log key (")
    assert "is not the one this home pinned" in again.stderr


def test_the_consent_log_of_a_case_or_agent_that_does_not_exist_is_an_error(
        deployment: E2E) -> None:
    d = deployment.d
    for args, says in ((("--case", "C-9999"), "unknown case C-9999"),
                       (("--agent", "no-such-agent"), "unknown agent no-such-agent")):
        done = d.auditor("consent", "log", *args, check=False)
        assert (done.returncode, done.stderr) == (1, f"error: {says}\n")


def test_a_garbled_pin_refuses_the_login_before_the_token_is_spent(deployment: E2E,
                                                                    tmp_path: Path) -> None:
    d = deployment.d
    home, pin = tmp_path / "dora", tmp_path / "dora" / "log.vkey"
    d.run("rmctl", home, "login", "--token", d.token("auditor", "add", "dora"))
    pin.write_text("garbage\n")
    token = d.token("auditor", "add", "dora")
    refused = d.run("rmctl", home, "login", "--token", token, check=False)
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"error: {pin} is not a log verifier key")
    pin.unlink()  # the auditor removes it, and the same token still works
    d.run("rmctl", home, "login", "--token", token)
    assert pin.read_text() == (d.controller_home / "log.vkey").read_text()
