"""Admin and case commands turn options into the documented requests and readable output."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from typer.testing import CliRunner

from controller.cli import app
from rmaint.v1 import controller_pb2 as pb

from .conftest import FakeChannel, Home

MakeHome = Callable[..., Home]


@pytest.fixture
def admin(home_factory: MakeHome) -> Home:
    return home_factory(role="admin", name="admin")


def rmctl(runner: CliRunner, home: Home, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--home", str(home.path), *args])
    assert "Traceback" not in result.output
    return result.exit_code, result.stdout, result.stderr


def test_customer_add_sends_the_contract(runner: CliRunner, admin: Home,
                                         channel: FakeChannel) -> None:
    channel.handlers["AddCustomer"] = lambda r: pb.AddCustomerResponse(customer=r.customer)
    code, out, _ = rmctl(runner, admin, "customer", "add", "acme", "--name", "Acme Ltd",
                         "--contract-start", "2025-01-01", "--contract-end", "2026-12-31")
    assert code == 0
    [request] = channel.requests("AddCustomer")
    assert (request.customer.customer_id, request.customer.name, request.customer.contract_start,
            request.customer.contract_end) == ("acme", "Acme Ltd", "2025-01-01", "2026-12-31")
    assert "customer acme added" in out


@pytest.mark.parametrize(("start", "end", "status", "message"), [
    ("2025-13-01", "2026-01-01", 2,
     "invalid value for '--contract-start': '2025-13-01' is not a date written YYYY-MM-DD"),
    ("2025-01-01", "31.12.2026", 2, "invalid value for '--contract-end': '31.12.2026' is not"),
    ("2026-01-01", "2025-01-01", 1, "the contract ends (2025-01-01) before it starts"),
])
def test_customer_add_checks_dates_before_sending(runner: CliRunner, admin: Home,
                                                  channel: FakeChannel, start: str, end: str,
                                                  status: int, message: str) -> None:
    code, _, err = rmctl(runner, admin, "customer", "add", "acme", "--name", "A",
                         "--contract-start", start, "--contract-end", end)
    assert code == status and err.startswith("error: ") and message in err
    assert channel.calls == []


def test_customer_list_table_and_json(runner: CliRunner, admin: Home,
                                      channel: FakeChannel) -> None:
    customer = pb.Customer(customer_id="acme", name="Acme", contract_start="2025-01-01",
                           contract_end="2026-12-31")
    channel.handlers["ListCustomers"] = lambda _: pb.ListCustomersResponse(customers=[customer])
    code, out, _ = rmctl(runner, admin, "customer", "list")
    assert code == 0 and "acme" in out and "2026-12-31" in out
    code, out, _ = rmctl(runner, admin, "--json", "customer", "list")
    assert json.loads(out) == [{"customer_id": "acme", "name": "Acme",
                                "contract_start": "2025-01-01", "contract_end": "2026-12-31"}]


def test_agent_add_prints_the_token_and_how_to_use_it(runner: CliRunner, admin: Home,
                                                      channel: FakeChannel) -> None:
    token = "rmj1." + "x" * 200
    channel.handlers["CreateJoinToken"] = lambda _: pb.CreateJoinTokenResponse(
        token=token, expires_at=1_900_000_000)
    code, out, _ = rmctl(runner, admin, "agent", "add", "web-1", "--customer", "acme")
    assert code == 0
    [request] = channel.requests("CreateJoinToken")
    assert (request.role, request.subject, request.customer_id, request.ttl_seconds) == (
        "agent", "web-1", "acme", 1800)
    assert f"rmagent enroll --token {token}\n" in out


@pytest.mark.parametrize(("group", "role"), [("engineer", "engineer"), ("auditor", "auditor")])
def test_people_tokens_are_for_rmctl_login(runner: CliRunner, admin: Home, channel: FakeChannel,
                                           group: str, role: str) -> None:
    issued = "rmj1.abc"
    channel.handlers["CreateJoinToken"] = lambda _: pb.CreateJoinTokenResponse(
        token=issued, expires_at=1_900_000_000)
    code, out, _ = rmctl(runner, admin, group, "add", "alice", "--ttl", "2h")
    assert code == 0
    [request] = channel.requests("CreateJoinToken")
    assert (request.role, request.subject, request.ttl_seconds) == (role, "alice", 7200)
    assert "rmctl login --token rmj1.abc" in out


@pytest.mark.parametrize(("args", "status", "message"), [
    (["agent", "add", "Web_1", "--customer", "acme"], 2,
     "invalid value for 'ID': invalid agent id 'Web_1'"),
    (["engineer", "add", "../alice"], 2, "invalid value for 'NAME': invalid name '../alice'"),
    (["engineer", "add", "alice", "--ttl", "soon"], 2,
     "invalid value for '--ttl': invalid duration 'soon'"),
])
def test_token_inputs_are_checked_before_sending(runner: CliRunner, admin: Home,
                                                 channel: FakeChannel, args: list[str],
                                                 status: int, message: str) -> None:
    code, _, err = rmctl(runner, admin, *args)
    assert code == status and message in err
    assert channel.calls == []


def test_case_commands(runner: CliRunner, admin: Home, channel: FakeChannel) -> None:
    case = pb.Case(case_id="C-0001", customer_id="acme", title="disk full", status="open",
                   assignee="alice", opened_at=1_700_000_000)
    channel.handlers["OpenCase"] = lambda _: pb.OpenCaseResponse(case=case)
    channel.handlers["ListCases"] = lambda _: pb.ListCasesResponse(cases=[case])
    channel.handlers["CloseCase"] = lambda _: pb.CloseCaseResponse(case=case)
    assert rmctl(runner, admin, "case", "open", "--customer", "acme", "--title", "disk full",
                 "--assign", "alice")[0] == 0
    assert rmctl(runner, admin, "case", "list", "--status", "open", "--customer", "acme")[0] == 0
    assert rmctl(runner, admin, "case", "close", "C-0001", "--resolution", "cleaned")[0] == 0
    [opened] = channel.requests("OpenCase")
    [listed] = channel.requests("ListCases")
    [closed] = channel.requests("CloseCase")
    assert (opened.customer_id, opened.title, opened.assignee) == ("acme", "disk full", "alice")
    assert (listed.status, listed.customer_id) == ("open", "acme")
    assert (closed.case_id, closed.resolution) == ("C-0001", "cleaned")


def test_case_show_lists_requests_and_sessions(runner: CliRunner, admin: Home,
                                               channel: FakeChannel) -> None:
    reply = pb.GetCaseResponse(
        case=pb.Case(case_id="C-0001", customer_id="acme", title="t", status="open"),
        requests=[pb.AccessRequest(request_id="R-00000000000a", case_id="C-0001",
                                   agent_id="web-1", engineer="alice", scopes=["diag.read"],
                                   duration_seconds=7200, status="approved", grant_id="G-1")],
        sessions=[pb.Session(session_id="S-00000000000b", case_id="C-0001", agent_id="web-1",
                             engineer="alice", grant_id="G-1", started_at=1_700_000_000)])
    channel.handlers["GetCase"] = lambda _: reply
    code, out, _ = rmctl(runner, admin, "case", "show", "C-0001")
    assert code == 0
    assert "R-00000000000a" in out and "S-00000000000b" in out and "2h" in out
    code, out, _ = rmctl(runner, admin, "case", "show", "C-0001", "--json")
    data = json.loads(out)
    assert data["requests"][0]["duration_seconds"] == 7200
    assert data["sessions"][0]["started_at"] == 1_700_000_000


def test_consent_log_filters(runner: CliRunner, admin: Home, channel: FakeChannel) -> None:
    entry = pb.ConsentEntry(entry_id=1, at=1_700_000_000, kind="approved", request_id="R-1",
                            grant_id="G-1", case_id="C-0001", agent_id="web-1",
                            actor="sha256:abc", scopes=["diag.read"])
    channel.handlers["ConsentLog"] = lambda _: pb.ConsentLogResponse(entries=[entry])
    code, out, _ = rmctl(runner, admin, "consent", "log", "--case", "C-0001", "--agent", "web-1")
    assert code == 0 and "approved" in out
    [request] = channel.requests("ConsentLog")
    assert (request.case_id, request.agent_id) == ("C-0001", "web-1")
