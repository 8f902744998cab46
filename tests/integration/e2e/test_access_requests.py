"""Access requests the controller refuses, with a clear message, via ``rmctl access request``.

The case is closed, or assigned to someone else, the agent belongs to another customer,
or the customer's service contract does not cover today (outside it the service company
may only advise). Nothing is filed: no consent log entry, nothing for the agent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from demo.deployment import free_port
from rmaint.v1 import controller_pb2 as pb
from rmaint.v1 import controller_pb2_grpc as rpc
from tests.integration.e2e.conftest import AGENT_ID, E2E, RPC_TIMEOUT, one_error_line

OUTSIDE = "outside the service contract: the service company may only advise"


@dataclass(frozen=True)
class Refusable:
    case_id: str
    agent_id: str
    message: str


@pytest.fixture(scope="module")
def refusable(deployment: E2E, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Refusable]:
    """Cases (and an agent) whose access requests must be refused, made as the admin."""
    with deployment.channel("controller", "admin") as channel:
        admin = rpc.AdminServiceStub(channel)
        for customer_id, start, end in (("globex", "2026-01-01", "2030-12-31"),
                                        ("initech", "2020-01-01", "2020-12-31")):
            admin.AddCustomer(pb.AddCustomerRequest(customer=pb.Customer(
                customer_id=customer_id, name=customer_id.title(), contract_start=start,
                contract_end=end)), timeout=RPC_TIMEOUT)
        token = admin.CreateJoinToken(pb.CreateJoinTokenRequest(
            role="agent", subject="old-1", customer_id="initech"), timeout=RPC_TIMEOUT).token
        admin.CreateJoinToken(pb.CreateJoinTokenRequest(role="engineer", subject="dave"),
                              timeout=RPC_TIMEOUT)  # added, so that a case can be his
        closed = deployment.open_case()
        rpc.CaseServiceStub(channel).CloseCase(pb.CloseCaseRequest(
            case_id=closed, resolution="fixed"), timeout=RPC_TIMEOUT)
    others = deployment.open_case(assignee="dave")
    globex = deployment.open_case(customer_id="globex")
    initech = deployment.open_case(customer_id="initech")
    home: Path = tmp_path_factory.mktemp("old-1")
    deployment.d.run("rmagent", home, "enroll", "--token", token,
                     "--listen", f"127.0.0.1:{free_port()}")
    return {
        "case-closed": Refusable(closed, AGENT_ID, f"case {closed} is closed"),
        "not-assigned": Refusable(others, AGENT_ID, f"case {others} is unknown or not assigned to you"),
        "other-customer": Refusable(globex, AGENT_ID,
                                    f"agent {AGENT_ID} is not an agent of customer globex"),
        "outside-contract": Refusable(initech, "old-1", OUTSIDE),
    }


@pytest.mark.parametrize("why", ["case-closed", "not-assigned", "other-customer",
                                 "outside-contract"])
def test_access_request_is_refused_clearly(deployment: E2E, refusable: dict[str, Refusable],
                                           why: str) -> None:
    target = refusable[why]
    done = deployment.d.engineer("access", "request", "--case", target.case_id, "--agent",
                                 target.agent_id, "--scope", "diag.read", "--for", "1h",
                                 "--reason", "customer reports slow responses", "--json",
                                 check=False)
    assert one_error_line(done) == target.message
    assert done.stdout == ""
    assert deployment.consent_log(target.case_id) == []


def test_a_request_can_be_approved_the_moment_it_is_filed(deployment: E2E) -> None:
    """rmagent approve asks the daemon to fetch new requests when it holds none by that id:
    the customer need not run 'rmagent requests' first, nor wait for the next sync."""
    d = deployment.d
    case_id = deployment.open_case()
    filed = d.json(d.engineer("access", "request", "--case", case_id, "--agent", AGENT_ID,
                              "--scope", "diag.read", "--for", "1h", "--reason",
                              "e2e: approved at once", "--json"))
    grant = d.json(d.rmagent("approve", filed["request_id"], "--yes", "--json"))
    assert grant["request_id"] == filed["request_id"] and grant["scopes"] == ["diag.read"]
