"""make demo: the main job end to end on loopback, on the embedded SQLite store.

Leaves its state in demo-state/ for further exploration with rmctl and rmagent.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from demo.correction import correction
from demo.deployment import Deployment, StepFailed, wait_until

STATE = Path(__file__).resolve().parents[1] / "demo-state"


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def main() -> int:
    d = Deployment(STATE, echo=True)
    try:
        run(d)
    except StepFailed as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr)
        return 1
    finally:
        d.stop()
    print(f"\nDone. The deployment's state is in {STATE.name}/ — try:\n"
          f"  .venv/bin/rmagent --home {STATE.name}/agent log\n"
          f"  .venv/bin/rmctl --home {STATE.name}/controller serve 2>/dev/null &"
          "   # the demo stopped it\n"
          f"  .venv/bin/rmctl --home {STATE.name}/auditor consent log")
    return 0


def run(d: Deployment) -> None:
    step("The service company initialises a deployment and starts the controller")
    d.initialise()
    d.start_controller()
    step("A customer with a service contract")
    d.rmctl("customer", "add", "acme", "--name", "Acme Corp",
            "--contract-start", "2026-01-01", "--contract-end", "2030-12-31")
    step("The customer enrolls an agent with a one-time token and pins an approver key")
    d.enroll_agent()
    d.start_agent()
    step("An engineer and an auditor log in with one-time tokens")
    d.login("engineer", "alice", d.engineer_home)
    d.login("auditor", "bob", d.auditor_home)
    step("A support case is opened and assigned")
    case_id = d.open_case()
    step("The engineer asks for access; the customer sees the request and approves it")
    request = d.json(d.engineer("access", "request", "--case", case_id, "--agent", "web-1",
                                "--scope", "diag.read", "--for", "2h",
                                "--reason", "customer reports slow responses", "--json"))
    d.rmagent("requests")
    grant = d.json(d.rmagent("approve", request["request_id"], "--yes", "--json"))
    step("The engineer opens a session and runs three diagnostics")
    d.engineer("session", "open", "--case", case_id, "--agent", "web-1")
    d.engineer("diag", "system")
    d.engineer("diag", "disks")
    d.engineer("diag", "processes", "--by", "memory", "--limit", "5")
    step("The customer revokes the grant")
    d.rmagent("revoke", grant["grant_id"], "--reason", "diagnosis done")
    step("The next call is denied: the revocation closed the session")
    denied = d.engineer("diag", "system", check=False)
    print(denied.stderr.strip())
    if denied.returncode == 0:
        raise StepFailed("a call after revocation was not denied")
    corrected = correction(d, step)
    step("The session log, as an auditor sees it")
    sessions = d.json(d.auditor("session", "list", "--case", case_id, "--json"))
    d.auditor("session", "show", sessions[0]["session_id"])
    step("The consent log: access, and the customer's signed consent to each change")
    d.auditor("consent", "log", "--case", case_id)
    d.echo = False  # the agent reports consents in the background: wait for both, quietly
    wait_until(lambda: sum(e["kind"] == "change-approved" for e in d.json(d.auditor(
        "consent", "log", "--case", corrected, "--json"))) == 2, "the change consents")
    d.echo = True
    d.auditor("consent", "log", "--case", corrected)
    step("The auditor verifies the controller's tamper-evident log; the customer the agent's")
    d.auditor("audit", "verify", "--case", corrected)
    d.rmagent("verify-log")
    step("The agent's own log of every attempt")
    d.rmagent("log", "--limit", "8")


if __name__ == "__main__":
    sys.exit(main())
